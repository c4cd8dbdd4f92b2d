//! Workers that leave by a door without a terminate hook: Spot interruptions, rebalance
//! recommendations, scheduled maintenance (AWS Health), stops and terminations outside any hook,
//! Standby and detachment.
//!
//! Reconcile style: an event is a wake-up plus a durable fact, the cluster's *exit record*
//! `<prefix>/<cluster>/exits/<instance>` ("this instance leaves by that door, by then"), written
//! once the instance is known to be a worker of the cluster (from EC2 and Auto Scaling, never from
//! the event). The reconcile pass then acts on the records and on what it sees by itself (Standby,
//! detached and stopped instances: a lost event is repaired by the schedule), with pure decisions
//! ([`decide`]) and the existing drain path (a budget that fits the time left).

pub mod decide;
pub mod event;
pub mod handle;
pub mod node;
pub mod pass;
pub mod record;
pub mod seen;

use serde::{Deserialize, Serialize};

/// The door an instance leaves by, in the order one notice overrides another (a Spot warning
/// after a rebalance recommendation is a Spot exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Door {
    /// `EC2 Instance Rebalance Recommendation`: the instance is at elevated risk of interruption.
    Rebalance,
    /// Put into Standby in its group (no hook runs).
    Standby,
    /// Detached from its group (no hook runs).
    Detached,
    /// An AWS Health event scheduled a retirement, stop or reboot.
    Maintenance,
    /// Stopping, stopped, shutting down or terminated outside any hook.
    Stopped,
    /// `EC2 Spot Instance Interruption Warning`: reclaimed two minutes later.
    Spot,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Rebalance => "rebalance",
            Door::Standby => "standby",
            Door::Detached => "detached",
            Door::Maintenance => "maintenance",
            Door::Stopped => "stopped",
            Door::Spot => "spot",
        }
    }

    /// The instance comes back by itself (out of Standby, attached again, started again, a
    /// reboot): what was done is undone then.
    pub fn may_return(self) -> bool {
        !matches!(self, Door::Spot)
    }
}

/// What a setting lets joinkeeper do on a door that does not end the instance by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitAction {
    Nothing,
    Cordon,
    Drain,
}

impl ExitAction {
    /// Reads `none`, `cordon` or `drain`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "none" => Some(ExitAction::Nothing),
            "cordon" => Some(ExitAction::Cordon),
            "drain" => Some(ExitAction::Drain),
            _ => None,
        }
    }
}

/// The settings the exits follow (the configuration table's `JOINKEEPER_REBALANCE_ACTION`,
/// `JOINKEEPER_STANDBY_ACTION`, `JOINKEEPER_MAINTENANCE_LEAD_SECONDS`,
/// `JOINKEEPER_MAINTENANCE_REPLACE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitSettings {
    pub rebalance: ExitAction,
    pub standby: ExitAction,
    pub maintenance_lead: std::time::Duration,
    pub maintenance_replace: bool,
    pub drain_timeout: std::time::Duration,
}
