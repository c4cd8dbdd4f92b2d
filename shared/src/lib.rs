//! joinkeeper's core: configuration, the join record, the freshness policy, the AWS adapters and
//! the single-flight regeneration that the Lambda functions share.
//!
//! Decisions are pure functions over plain data ([`freshness`], [`names`], [`record`]); I/O sits in
//! the small adapters under [`aws`].

pub mod aws;
pub mod config;
pub mod events;
pub mod freshness;
pub mod hooks;
pub mod lifecycle;
pub mod names;
pub mod record;
pub mod refresh;
pub mod regenerate;
pub mod runtime;
pub mod telemetry;
pub mod timefmt;

pub use config::Config;
