//! Structured JSON logs for CloudWatch: one object per line, level from `RUST_LOG` (default
//! `info`), the current span's fields (cluster, instance id, request id) on every line.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once per process. Safe to call twice (the second is a no-op).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .without_time()
        .try_init();
}
