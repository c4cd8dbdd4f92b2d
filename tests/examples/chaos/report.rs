//! The report of one run: what was injected and delivered, how the actions ended, the latencies
//! the invariants measured, each violation with its evidence; and the one-line summary.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use joinkeeper::lease::now_ms;
use joinkeeper_tests::*;

use crate::invariants::leases::holdings;
use crate::invariants::Monitor;
use crate::journal::Shared;

pub struct RunSummary {
    pub seed: u64,
    pub violations: usize,
    pub line: String,
    /// Every Ready → CONTINUE of the run, seconds: a soak's percentiles are over all its seeds.
    pub ready_to_continue: Vec<f64>,
}

/// The soak's line: Ready → CONTINUE over every seed's samples.
pub fn pooled(summaries: &[RunSummary]) -> String {
    let all: Vec<f64> = summaries
        .iter()
        .flat_map(|s| s.ready_to_continue.iter().copied())
        .collect();
    format!("all seeds: Ready->CONTINUE {}", fmt_p(&all))
}

/// Prints the report of the run of `seed` (begun at `started`; `delivered` lifecycle events and
/// `schedules` scheduled runs); its summary.
pub fn report(
    seed: u64,
    started: Instant,
    delivered: u64,
    schedules: u64,
    emulator: &Emulator,
    journal: &Shared,
    monitor: &mut Monitor,
) -> RunSummary {
    let faults = emulator.control_opt("/_joinkeeper/faults");
    let j = journal.lock().expect("journal");
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for r in &j.invocations {
        let k = if r.outcome.starts_with("error") {
            "error"
        } else {
            r.outcome.as_str()
        };
        *by_outcome.entry(format!("{} {k}", r.function)).or_default() += 1;
    }
    let kills = j
        .invocations
        .iter()
        .filter(|r| r.outcome == "killed")
        .count();
    let mut actions: BTreeMap<String, usize> = BTreeMap::new();
    for a in monitor.actions.as_array().cloned().unwrap_or_default() {
        let kind = if a["transition"]
            .as_str()
            .is_some_and(|t| t.ends_with("LAUNCHING"))
        {
            "launch"
        } else {
            "terminate"
        };
        *actions
            .entry(format!(
                "{kind} {}->{} {} by {}",
                a["origin"].as_str().unwrap_or("?"),
                a["destination"].as_str().unwrap_or("?"),
                a["result"].as_str().unwrap_or("open"),
                a["ended_by"].as_str().unwrap_or("-")
            ))
            .or_default() += 1;
    }
    println!("\nseed {seed}: {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "  faults injected        {}",
        if faults.is_object() && !faults["error"].is_string() {
            faults["injected"].to_string()
        } else {
            "none (no fault control in this emulator)".into()
        }
    );
    if faults["by_operation"].is_object() {
        println!("  faults by operation    {}", faults["by_operation"]);
    }
    println!(
        "  invocations            {} ({} events delivered, {schedules} schedules); {kills} killed; {by_outcome:?}",
        j.invocations.len(),
        delivered
    );
    println!("  actions by outcome     {actions:?}");
    println!(
        "  Node Ready -> CONTINUE {}",
        fmt_p(&monitor.ready_to_continue)
    );
    println!(
        "  terminate -> completed {}",
        fmt_p(&monitor.terminate_to_complete)
    );
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for r in j
        .invocations
        .iter()
        .filter(|r| r.outcome.starts_with("error"))
    {
        let short: String = r.outcome.chars().take(160).collect();
        *errors.entry(short).or_default() += 1;
    }
    for r in j.invocations.iter().filter(|r| r.outcome == "killed") {
        println!(
            "  killed                 {} at {} ({:.1} s in)",
            r.id,
            monitor.rel(r.end_ms.unwrap_or(0)),
            (r.end_ms.unwrap_or(0) - r.start_ms) as f64 / 1000.0
        );
    }
    for f in ["launch-hook", "terminate-hook", "token-refresher"] {
        let calls: Vec<f64> = j
            .invocations
            .iter()
            .filter(|r| r.function == f)
            .map(|r| r.calls as f64)
            .collect();
        let planned = j
            .invocations
            .iter()
            .filter(|r| r.function == f && r.kill_planned.is_some())
            .count();
        println!(
            "  {f:<22} AWS requests per invocation p50 {:.0}, max {:.0}; kills planned {planned}",
            percentile(&calls, 50.0).unwrap_or(0.0),
            calls.iter().copied().fold(0.0, f64::max)
        );
    }
    for (e, n) in &errors {
        println!("  invocation {e} (x{n})");
    }
    let hs = holdings(&j, now_ms());
    println!(
        "  lease writes           {} ({} holdings on {} leases)",
        j.lease.len(),
        hs.len(),
        hs.iter().map(|h| &h.name).collect::<BTreeSet<_>>().len()
    );
    monitor.slow_terminates.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (took, what) in monitor.slow_terminates.iter().take(3) {
        println!("  slowest terminate      {took:.1} s {what}");
    }
    monitor.slow_continues.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (took, what) in monitor.slow_continues.iter().take(3) {
        println!("  slowest continue       {took:.1} s {what}");
    }
    for n in &monitor.notes {
        println!("  note: {n}");
    }
    println!("  invariant violations   {}", monitor.violations.len());
    for v in &monitor.violations {
        println!(
            "    [{}] {} at {}: {}",
            v.invariant,
            v.instance,
            monitor.rel(v.at_ms),
            v.evidence
        );
    }
    let line = format!(
        "seed {seed}: {} violations; kills {kills}; Ready->CONTINUE {}; terminate->completed {}; faults {}",
        monitor.violations.len(),
        fmt_p(&monitor.ready_to_continue),
        fmt_p(&monitor.terminate_to_complete),
        if faults.is_object() { faults["injected"].to_string() } else { "none".into() }
    );
    RunSummary {
        seed,
        violations: monitor.violations.len(),
        line,
        ready_to_continue: monitor.ready_to_continue.clone(),
    }
}

fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    Some(s[i.min(s.len() - 1)])
}

fn fmt_p(v: &[f64]) -> String {
    match (percentile(v, 50.0), percentile(v, 99.0)) {
        (Some(a), Some(b)) => format!("p50 {a:.1} s, p99 {b:.1} s (n = {})", v.len()),
        _ => "no samples".into(),
    }
}
