//! Running the `joinkeeper` command-line tool in-process against the emulator, as the operator.

use std::path::PathBuf;

use joinkeeper_cli::{parse, run};
use serde_json::Value;

use crate::Emulator;

/// The settings the CLI reads (the functions' variables), fast for tests.
pub fn settings(name: &str) -> Option<String> {
    match name {
        "JOINKEEPER_COMMAND_POLL_MILLIS" => Some("100".into()),
        "JOINKEEPER_COMMAND_DEADLINE_SECONDS" => Some("30".into()),
        "USER" => Some("oncall".into()),
        _ => None,
    }
}

/// One run: exit code, stdout, stderr.
pub struct Ran {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Ran {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.out, self.err))
    }
}

pub async fn cli_with(sdk: &aws_config::SdkConfig, args: &[&str]) -> Ran {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let command = parse(&args).expect("valid arguments");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&command, sdk, &settings, &mut out, &mut err).await;
    Ran {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The CLI with the operator's principal (`app/joinkeeper-cli`).
pub async fn cli(e: &Emulator, args: &[&str]) -> Ran {
    cli_with(&e.sdk_config(Some("joinkeeper-cli")).await, args).await
}

/// The stand-in control plane's folder for `cluster` (what its kubeadm and kubectl read and write).
pub fn kube_dir(e: &Emulator, cluster: &str) -> PathBuf {
    let dir = e.state_dir.join("clusters").join(cluster);
    std::fs::create_dir_all(&dir).expect("kube dir");
    dir
}
