//! joinkeeper's core: configuration, the join record's metadata and freshness policy, the lease,
//! the AWS adapters, single-flight regeneration and the per-cluster reconciler that the Lambda
//! functions share.
//!
//! Decisions are pure functions over plain data ([`freshness`], [`reconcile::decide`], [`names`],
//! [`record`]); I/O sits in the small adapters under [`aws`].

pub mod aws;
pub mod batch;
pub mod config;
pub mod context;
pub mod deadline;
pub mod events;
pub mod exits;
pub mod freshness;
pub mod handler;
pub mod identity;
pub mod lease;
pub mod lifecycle;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod nodes;
pub mod queue;
pub mod reconcile;
pub mod record;
pub mod redact;
pub mod refresh;
pub mod regenerate;
pub mod rogue;
pub mod runtime;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testing;
pub mod timefmt;

pub use config::Config;
pub use context::{Context, Invocation, Trigger};
