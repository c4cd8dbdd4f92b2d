//! Structured JSON logs for CloudWatch: one object per line, level from `RUST_LOG` (default
//! `info`), the current span's fields (cluster, instance id, request id) on every line.
//!
//! `RUST_LOG` takes levels and targets (`info`, `warn,joinkeeper=debug`), parsed by
//! `tracing_subscriber::filter::Targets`: no regular-expression engine in the functions (it was a
//! tenth of their binary and part of their start-up), and no span-field filters, which nothing
//! here needs.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter `RUST_LOG` asks for; `info` when it is unset, empty or unreadable (the reason is
/// logged once the subscriber is up).
pub fn log_filter(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim) {
        None | Some("") => (default(), None),
        Some(spec) => match Targets::from_str(spec) {
            Ok(targets) => (targets, None),
            Err(err) => (
                default(),
                Some(format!("RUST_LOG ignored ({err}); logging at info")),
            ),
        },
    }
}

/// Installs the JSON subscriber once per process. Safe to call twice (the second is a no-op).
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, problem) = log_filter(rust_log.as_deref());
    let format = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time();
    let installed = tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .try_init()
        .is_ok();
    if let (true, Some(problem)) = (installed, problem) {
        tracing::warn!("{problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn an_unset_or_empty_rust_log_logs_at_info() {
        for spec in [None, Some(""), Some("  ")] {
            let (filter, problem) = log_filter(spec);
            assert!(filter.would_enable("joinkeeper::reconcile", &Level::INFO));
            assert!(!filter.would_enable("joinkeeper::reconcile", &Level::DEBUG));
            assert_eq!(problem, None);
        }
    }

    #[test]
    fn levels_and_targets_are_honoured() {
        let (filter, problem) = log_filter(Some("warn,joinkeeper::lease=debug"));
        assert_eq!(problem, None);
        assert!(filter.would_enable("joinkeeper::lease", &Level::DEBUG));
        assert!(!filter.would_enable("joinkeeper::reconcile", &Level::INFO));
        assert!(filter.would_enable("hyper", &Level::WARN));
    }

    #[test]
    fn an_unreadable_rust_log_falls_back_to_info_and_says_why() {
        let (filter, problem) = log_filter(Some("joinkeeper=loud"));
        assert!(filter.would_enable("joinkeeper", &Level::INFO));
        assert!(!filter.would_enable("joinkeeper", &Level::DEBUG));
        assert!(problem.expect("a reason").contains("RUST_LOG ignored"));
    }
}
