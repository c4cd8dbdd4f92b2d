//! The command line (see the crate's documentation for the flags).

use std::time::SystemTime;

#[derive(Clone, Debug)]
pub struct Opts {
    pub seeds: Vec<u64>,
    pub minutes: f64,
    pub throttle: f64,
    pub lost: f64,
    pub kill: f64,
    pub errors: f64,
    pub lost_mode: String,
    pub latency_ms: (u64, u64),
    pub faults: bool,
    pub sabotage: bool,
}

pub fn parse_args() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Opts {
        seeds: Vec::new(),
        minutes: 5.0,
        throttle: 0.10,
        lost: 0.02,
        kill: 0.01,
        errors: 0.0,
        lost_mode: "reset".into(),
        latency_ms: (0, 0),
        faults: true,
        sabotage: false,
    };
    let mut i = 0;
    let value = |i: usize| -> String {
        args.get(i + 1)
            .cloned()
            .unwrap_or_else(|| panic!("{} needs a value", args[i]))
    };
    while i < args.len() {
        let f = |s: String| -> f64 { s.parse().unwrap_or_else(|_| panic!("not a number: {s}")) };
        match args[i].as_str() {
            "--seed" => o.seeds = vec![value(i).parse().expect("seed")],
            "--seeds" => {
                let v = value(i);
                let (a, b) = v.split_once("..").expect("--seeds A..B");
                let (a, b): (u64, u64) = (a.parse().expect("A"), b.parse().expect("B"));
                o.seeds = (a..=b).collect();
            }
            "--minutes" => o.minutes = f(value(i)),
            "--throttle" => o.throttle = f(value(i)),
            "--lost" => o.lost = f(value(i)),
            "--kill" => o.kill = f(value(i)),
            "--errors" => o.errors = f(value(i)),
            "--lost-mode" => o.lost_mode = value(i),
            "--latency-ms" => {
                let v = value(i);
                let (a, b) = v.split_once(',').expect("--latency-ms MIN,MAX");
                o.latency_ms = (a.parse().expect("MIN"), b.parse().expect("MAX"));
            }
            "--sabotage" => {
                o.sabotage = true;
                i += 1;
                continue;
            }
            "--no-faults" => {
                o.faults = false;
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    if o.seeds.is_empty() {
        o.seeds = vec![SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or(1)];
    }
    o
}
