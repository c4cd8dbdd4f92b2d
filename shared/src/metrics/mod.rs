//! Metrics in CloudWatch Embedded Metric Format (EMF), as an observer held by the
//! [`Context`](crate::Context): the reconciler, the refresh, the regeneration and the rogue check
//! build [`Record`]s from the [`catalogue`] and hand them to `ctx.metrics.record(...)`; the AWS
//! adapters record nothing (the commands sent are counted by
//! [`Context::send_command`](crate::Context::send_command)).
//!
//! - [`emf`]: the format, one record → one JSON object;
//! - [`catalogue`]: the metric names and units, and what the core's reports become;
//! - [`Metrics`]: the sink. Stdout in the functions (Lambda sends it to the function's log group,
//!   where CloudWatch extracts the metrics), off in the command-line tool, captured in tests.
//!
//! On stdout the lines do not go through `tracing` (its JSON layer would nest the `_aws` object as
//! a string); each is written with one locked write, so it never interleaves with a log line.

pub mod catalogue;
pub mod emf;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub use catalogue::{
    abandon_class, action, command_sent, impostor_control_plane, join_tokens, name, refresh_pass,
    regeneration, rogue_certificate_request, rogue_node,
};
pub use emf::{Record, Unit, CLUSTER, NAMESPACE};

/// Where a context's metric lines go. Clones share the same destination.
#[derive(Clone, Debug, Default)]
pub enum Metrics {
    /// One line per record on stdout (the functions).
    #[default]
    Stdout,
    /// Nowhere (the command-line tool: its stdout is for people and scripts, and no log group
    /// would read the lines).
    Off,
    /// Kept in memory, in order (tests: [`Metrics::lines`]).
    Captured(Arc<Mutex<Vec<String>>>),
}

impl Metrics {
    /// A sink that keeps the lines for [`Metrics::lines`].
    pub fn captured() -> Self {
        Metrics::Captured(Arc::default())
    }

    /// Writes one record (nothing for a record without metrics).
    pub fn record(&self, record: Record) {
        if record.is_empty() || matches!(self, Metrics::Off) {
            return;
        }
        let line = record.to_json(now_ms()).to_string();
        match self {
            Metrics::Off => {}
            Metrics::Captured(lines) => lines.lock().unwrap_or_else(|e| e.into_inner()).push(line),
            Metrics::Stdout => {
                if STDOUT.load(Ordering::Relaxed) {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(format!("{line}\n").as_bytes());
                    let _ = out.flush();
                }
            }
        }
    }

    pub fn record_all(&self, records: impl IntoIterator<Item = Record>) {
        for record in records {
            self.record(record);
        }
    }

    /// The lines recorded so far, parsed (empty unless captured).
    pub fn lines(&self) -> Vec<Value> {
        match self {
            Metrics::Captured(lines) => lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

static STDOUT: AtomicBool = AtomicBool::new(true);

/// Silences every [`Metrics::Stdout`] sink for the rest of the process: for programs that build
/// contexts with [`Context::new`](crate::Context::new) and print their own report on stdout (the
/// chaos example). A context chooses its own sink with
/// [`Context::with_metrics`](crate::Context::with_metrics).
pub fn disable_stdout() {
    STDOUT.store(false, Ordering::Relaxed);
}
