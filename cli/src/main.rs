//! `joinkeeper`: the operator's command-line tool. See `joinkeeper help` and the README's
//! operator section; exit codes are [`joinkeeper_cli::exit`].

#![recursion_limit = "256"] // the regenerate futures nest deeply (SDK calls inside retry loops)

use std::io::Write;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str| std::env::var(name).ok();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = joinkeeper_cli::main_with(&args, &env, &mut out, &mut err).await;
    let _ = out.flush();
    std::process::exit(code);
}
