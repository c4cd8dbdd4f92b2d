//! Auto Scaling lifecycle actions as plain data: transitions, the wait states joinkeeper acts on,
//! hook results, and the Node states the control plane reports. No I/O here.

mod event;

pub use event::{parse_event, LifecycleEvent, LifecycleEventError};

use crate::names::{ActionToken, GroupName, HookName, InstanceId};

pub const LAUNCH_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";
pub const TERMINATE_DETAIL_TYPE: &str = "EC2 Instance-terminate Lifecycle Action";
pub const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transition {
    Launching,
    Terminating,
}

impl Transition {
    pub fn from_aws(s: &str) -> Option<Self> {
        match s {
            LAUNCHING => Some(Transition::Launching),
            TERMINATING => Some(Transition::Terminating),
            _ => None,
        }
    }
}

/// Where an instance comes from or goes to (the event's `Origin` / `Destination`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Ec2,
    AutoScalingGroup,
    WarmPool,
}

impl Place {
    pub fn from_aws(s: &str) -> Option<Self> {
        match s {
            "EC2" => Some(Place::Ec2),
            "AutoScalingGroup" => Some(Place::AutoScalingGroup),
            "WarmPool" => Some(Place::WarmPool),
            _ => None,
        }
    }
}

/// The lifecycle states in which an instance waits for joinkeeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum WaitState {
    /// Launching into service (from EC2 or from the warm pool): CONTINUE once its Node is Ready.
    #[serde(rename = "Pending:Wait")]
    PendingWait,
    /// Leaving service to be terminated: drain and delete the Node first.
    #[serde(rename = "Terminating:Wait")]
    TerminatingWait,
    /// Entering the warm pool: fresh from EC2 (no Node: CONTINUE at once), or back from service on
    /// scale-in (its Node is drained and deleted first).
    #[serde(rename = "Warmed:Pending:Wait")]
    WarmedPendingWait,
    /// Leaving the warm pool to be terminated: no Node, complete at once.
    #[serde(rename = "Warmed:Terminating:Wait")]
    WarmedTerminatingWait,
}

impl WaitState {
    pub fn from_aws(s: &str) -> Option<Self> {
        match s {
            "Pending:Wait" => Some(WaitState::PendingWait),
            "Terminating:Wait" => Some(WaitState::TerminatingWait),
            "Warmed:Pending:Wait" => Some(WaitState::WarmedPendingWait),
            "Warmed:Terminating:Wait" => Some(WaitState::WarmedTerminatingWait),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WaitState::PendingWait => "Pending:Wait",
            WaitState::TerminatingWait => "Terminating:Wait",
            WaitState::WarmedPendingWait => "Warmed:Pending:Wait",
            WaitState::WarmedTerminatingWait => "Warmed:Terminating:Wait",
        }
    }
}

/// The result a lifecycle action is completed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookResult {
    Continue,
    Abandon,
}

impl HookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            HookResult::Continue => "CONTINUE",
            HookResult::Abandon => "ABANDON",
        }
    }
}

/// One pending lifecycle action, from an event or found by the reconciler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleAction {
    pub transition: Transition,
    pub group: GroupName,
    pub hook: HookName,
    pub instance: InstanceId,
    pub token: Option<ActionToken>,
    pub origin: Option<Place>,
    pub destination: Option<Place>,
}

/// A Node's condition as the control plane reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    NotReady,
    Unknown,
    /// No Node matches the instance.
    Absent,
    /// Two or more Nodes claim the instance: none is believed (never Ready, never drained in
    /// another's place), and the claimants are reported.
    Contested,
}

/// Whether to record a heartbeat now: when half the hook's heartbeat timeout has passed since the
/// last one (or since the wait began), so the hook never reaches its timeout while joinkeeper is
/// still deciding.
pub fn heartbeat_due(
    since_last: std::time::Duration,
    heartbeat_timeout: std::time::Duration,
) -> bool {
    since_last >= heartbeat_timeout / 2
}
