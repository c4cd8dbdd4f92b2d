//! The configuration table: every environment variable, its default, range and meaning.
//!
//! This table is the one source of the functions' settings: `Config::from_lookup` validates
//! against it, and the CDK app (`infra/lib/config.ts`) validates its context values against
//! `infra/lib/settings.json`, which the test `settings_table` writes from it. After changing a
//! row, run `JOINKEEPER_WRITE_SETTINGS=1 cargo test -p joinkeeper --lib settings_table`.

/// What a setting's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
    /// A whole number of things.
    Count,
    Bool,
    /// A Parameter Store path such as `/joinkeeper`.
    Path,
    /// A name prefix of `[A-Za-z0-9_.-]`, 1 to 200 long.
    Name,
    /// An SSM document name, `[A-Za-z0-9_.-]{3,128}`.
    Document,
    /// `none`, or `<cluster>=<instance profile ARN>` pairs separated by commas.
    Profiles,
    /// One of these words.
    Choice(&'static [&'static str]),
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Millis => "milliseconds",
            Unit::Count => "count",
            Unit::Bool => "bool",
            Unit::Path => "path",
            Unit::Name => "name",
            Unit::Document => "document",
            Unit::Profiles => "profiles",
            Unit::Choice(_) => "choice",
        }
    }
}

/// One row of the configuration table (also rendered in the README and in
/// `infra/lib/settings.json`).
pub struct Setting {
    /// The `Config` field it sets.
    pub name: &'static str,
    pub variable: &'static str,
    pub default: &'static str,
    pub unit: Unit,
    /// Inclusive bounds of a number.
    pub range: Option<(u64, u64)>,
    /// The value must be below this other setting's.
    pub below: Option<&'static Setting>,
    pub meaning: &'static str,
}

pub const PARAMETER_PREFIX: Setting = Setting {
    name: "parameter_prefix",
    variable: "JOINKEEPER_PARAMETER_PREFIX",
    default: "/joinkeeper",
    unit: Unit::Path,
    range: None,
    below: None,
    meaning: "Parameter Store prefix; a cluster's record is <prefix>/<cluster>/join-record",
};
pub const TOKEN_TTL: Setting = Setting {
    name: "token_ttl",
    variable: "JOINKEEPER_TOKEN_TTL_SECONDS",
    default: "7200",
    unit: Unit::Seconds,
    range: Some((600, 604_800)),
    below: None,
    meaning: "lifetime of each bootstrap token the control plane creates (the regenerate script accepts the same range); short, since joinkeeper rotates ahead of expiry: a leaked record is worth at most this long",
};
pub const REFRESH_MARGIN: Setting = Setting {
    name: "refresh_margin",
    variable: "JOINKEEPER_REFRESH_MARGIN_SECONDS",
    default: "3600",
    unit: Unit::Seconds,
    range: Some((60, 604_800)),
    below: Some(&TOKEN_TTL),
    meaning: "rotate when less than this remains before expiry; below the TTL and above the join deadline, so with the 10-minute schedule a record gets six chances to rotate before a worker could meet an expired token",
};
pub const COMMAND_DEADLINE: Setting = Setting {
    name: "command_deadline",
    variable: "JOINKEEPER_COMMAND_DEADLINE_SECONDS",
    default: "120",
    unit: Unit::Seconds,
    range: Some((30, 880)),
    below: None,
    meaning: "overall deadline for one Run Command invocation (send + wait); at least SSM's smallest delivery timeout (30 s), at most the 900 s Lambda timeout less 20 s for the calls around it",
};
pub const COMMAND_POLL: Setting = Setting {
    name: "command_poll",
    variable: "JOINKEEPER_COMMAND_POLL_MILLIS",
    default: "1000",
    unit: Unit::Millis,
    range: Some((100, 60_000)),
    below: None,
    meaning: "interval between Run Command status polls; at least 100 ms, so that one wait asks SSM at most ten times a second",
};
pub const JOIN_DEADLINE: Setting = Setting {
    name: "join_deadline",
    variable: "JOINKEEPER_JOIN_DEADLINE_SECONDS",
    default: "900",
    unit: Unit::Seconds,
    range: Some((10, 6_900)),
    below: Some(&TOKEN_TTL),
    meaning: "how long a new worker may take to become Ready before its launch is abandoned; the launch hook's heartbeat timeout is this plus 300 s, and AWS allows at most 7200 s",
};
pub const DRAIN_TIMEOUT: Setting = Setting {
    name: "drain_timeout",
    variable: "JOINKEEPER_DRAIN_TIMEOUT_SECONDS",
    default: "300",
    unit: Unit::Seconds,
    range: Some((10, 6_900)),
    below: None,
    meaning: "how long a drain may take on scale-in before the hook completes anyway; the terminate hook's heartbeat timeout is this plus 300 s, and AWS allows at most 7200 s",
};
pub const DEREGISTRATION_DELAY: Setting = Setting {
    name: "deregistration_delay",
    variable: "JOINKEEPER_DEREGISTRATION_DELAY_SECONDS",
    default: "0",
    unit: Unit::Seconds,
    range: Some((0, 3_600)),
    below: None,
    meaning: "on scale-in, how long the instance is kept after its Node was labelled out of external load balancers (the drain's first step) before the action completes: set it to the target groups' deregistration delay (Elastic Load Balancing's default is 300 s) so that connections in flight end before the instance does; 0 completes as soon as the drain ends",
};
pub const DRAIN_CONCURRENCY: Setting = Setting {
    name: "drain_concurrency",
    variable: "JOINKEEPER_DRAIN_CONCURRENCY",
    default: "4",
    unit: Unit::Count,
    range: Some((1, 50)),
    below: None,
    meaning: "drains that run at once in one cluster (each control plane also runs at most 2); when several Nodes leave together all are cordoned first, by one command, so that no pod evicted from one lands on another that is leaving",
};
pub const FUNCTION_TIMEOUT: Setting = Setting {
    name: "function_timeout",
    variable: "JOINKEEPER_FUNCTION_TIMEOUT_SECONDS",
    default: "900",
    unit: Unit::Seconds,
    range: Some((30, 900)),
    below: None,
    meaning: "the functions' Lambda timeout (set by the account stack); settings that cannot fit in it are refused at start-up",
};

pub const HOOK_PREFIX: Setting = Setting {
    name: "hook_prefix",
    variable: "JOINKEEPER_HOOK_PREFIX",
    default: "joinkeeper-",
    unit: Unit::Name,
    range: None,
    below: None,
    meaning: "only lifecycle hooks whose name starts with this are completed or heartbeated (the infra's hookNamePrefix)",
};

pub const ROGUE_GRACE: Setting = Setting {
    name: "rogue_grace",
    variable: "JOINKEEPER_ROGUE_NODE_GRACE_SECONDS",
    default: "900",
    unit: Unit::Seconds,
    range: Some((60, 604_800)),
    below: None,
    meaning: "a Node that no running instance of the cluster stands behind is reported (and acted on, as the cluster's rogue-nodes parameter allows) once older than this",
};

pub const NODES_DOCUMENT: Setting = Setting {
    name: "nodes_document",
    variable: "JOINKEEPER_NODES_DOCUMENT",
    default: "joinkeeper-nodes",
    unit: Unit::Document,
    range: None,
    below: None,
    meaning: "SSM Command document that lists every Node with its providerID and age",
};

pub const CORDON_DOCUMENT: Setting = Setting {
    name: "cordon_document",
    variable: "JOINKEEPER_CORDON_DOCUMENT",
    default: "joinkeeper-cordon",
    unit: Unit::Document,
    range: None,
    below: None,
    meaning: "SSM Command document that cordons (optionally deletes) Nodes, up to 50 per command",
};
pub const CONTROL_PLANE_PROFILES: Setting = Setting {
    name: "control_plane_profiles",
    variable: "JOINKEEPER_CONTROL_PLANE_PROFILES",
    default: "none",
    unit: Unit::Profiles,
    range: None,
    below: None,
    meaning: "instance profiles that make an instance a control plane of a cluster the cluster stack did not make (`<cluster>=<profile ARN>`, comma-separated); every other cluster's control planes must carry the profile `joinkeeper-control-plane-<cluster>`; tags alone never make a control plane",
};
pub const NODE_POLL: Setting = Setting {
    name: "node_poll",
    variable: "JOINKEEPER_NODE_POLL_SECONDS",
    default: "15",
    unit: Unit::Seconds,
    range: Some((1, 300)),
    below: None,
    meaning: "interval between Node status checks while a hook waits",
};
pub const REGENERATE_DOCUMENT: Setting = Setting {
    name: "regenerate_document",
    variable: "JOINKEEPER_REGENERATE_DOCUMENT",
    default: "joinkeeper-regenerate",
    unit: Unit::Document,
    range: None,
    below: None,
    meaning: "SSM Command document that mints a new token and writes the record",
};
pub const NODE_STATUS_DOCUMENT: Setting = Setting {
    name: "node_status_document",
    variable: "JOINKEEPER_NODE_STATUS_DOCUMENT",
    default: "joinkeeper-node-status",
    unit: Unit::Document,
    range: None,
    below: None,
    meaning: "SSM Command document that reports Nodes' Ready condition",
};
pub const DRAIN_DOCUMENT: Setting = Setting {
    name: "drain_document",
    variable: "JOINKEEPER_DRAIN_DOCUMENT",
    default: "joinkeeper-drain",
    unit: Unit::Document,
    range: None,
    below: None,
    meaning: "SSM Command document that cordons, drains and deletes a Node",
};
pub const JOIN_LOG_DOCUMENT: Setting = Setting {
    name: "join_log_document",
    variable: "JOINKEEPER_JOIN_LOG_DOCUMENT",
    default: "joinkeeper-join-log",
    unit: Unit::Document,
    range: None,
    below: None,
    meaning: "SSM Command document that prints the tail of a worker's join log",
};

/// What joinkeeper may do to a Node on a door that does not end its instance by itself.
pub const EXIT_ACTIONS: &[&str] = &["cordon", "drain", "none"];
pub const REBALANCE_ACTION: Setting = Setting {
    name: "rebalance_action",
    variable: "JOINKEEPER_REBALANCE_ACTION",
    default: "cordon",
    unit: Unit::Choice(EXIT_ACTIONS),
    range: None,
    below: None,
    meaning: "on an EC2 Instance Rebalance Recommendation for a worker: cordon its Node (no new pods land on an instance at elevated risk of interruption), drain it too, or none",
};
pub const STANDBY_ACTION: Setting = Setting {
    name: "standby_action",
    variable: "JOINKEEPER_STANDBY_ACTION",
    default: "drain",
    unit: Unit::Choice(EXIT_ACTIONS),
    range: None,
    below: None,
    meaning: "for a worker put into Standby or detached from its group (no hook runs): drain its Node (kept, cordoned), only cordon it, or none; undone (uncordoned) when the instance is back in service",
};
pub const MAINTENANCE_LEAD: Setting = Setting {
    name: "maintenance_lead",
    variable: "JOINKEEPER_MAINTENANCE_LEAD_SECONDS",
    default: "3600",
    unit: Unit::Seconds,
    range: Some((0, 1_209_600)),
    below: None,
    meaning: "a worker with scheduled maintenance (an AWS Health retirement, stop or reboot event) is cordoned and drained this long before the window starts (at most 14 days, about how early AWS announces it)",
};
pub const MAINTENANCE_REPLACE: Setting = Setting {
    name: "maintenance_replace",
    variable: "JOINKEEPER_MAINTENANCE_REPLACE",
    default: "false",
    unit: Unit::Bool,
    range: None,
    below: None,
    meaning: "true: once drained, a worker with scheduled maintenance is marked unhealthy (autoscaling:SetInstanceHealth), so its group replaces it through its lifecycle hooks before the window",
};

/// Every setting, in the order of the README's table.
pub const SETTINGS: &[&Setting] = &[
    &PARAMETER_PREFIX,
    &TOKEN_TTL,
    &REFRESH_MARGIN,
    &COMMAND_DEADLINE,
    &COMMAND_POLL,
    &JOIN_DEADLINE,
    &DRAIN_TIMEOUT,
    &DEREGISTRATION_DELAY,
    &DRAIN_CONCURRENCY,
    &FUNCTION_TIMEOUT,
    &HOOK_PREFIX,
    &ROGUE_GRACE,
    &NODE_POLL,
    &REGENERATE_DOCUMENT,
    &NODE_STATUS_DOCUMENT,
    &DRAIN_DOCUMENT,
    &JOIN_LOG_DOCUMENT,
    &NODES_DOCUMENT,
    &CORDON_DOCUMENT,
    &CONTROL_PLANE_PROFILES,
    &REBALANCE_ACTION,
    &STANDBY_ACTION,
    &MAINTENANCE_LEAD,
    &MAINTENANCE_REPLACE,
];

/// The table as JSON, for the CDK app (`infra/lib/settings.json`): numbers and booleans typed,
/// `min`/`max` inclusive, `below` the variable that this one's value must stay under.
pub fn settings_json() -> String {
    #[derive(serde::Serialize)]
    struct Row {
        name: &'static str,
        variable: &'static str,
        unit: &'static str,
        default: serde_json::Value,
        min: Option<u64>,
        max: Option<u64>,
        below: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        choices: Option<&'static [&'static str]>,
        description: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Table {
        generated: &'static str,
        settings: Vec<Row>,
    }
    let rows = SETTINGS
        .iter()
        .map(|s| Row {
            name: s.name,
            variable: s.variable,
            unit: s.unit.as_str(),
            default: match s.unit {
                Unit::Seconds | Unit::Millis | Unit::Count => {
                    s.default.parse::<u64>().expect("a number").into()
                }
                Unit::Bool => (s.default == "true").into(),
                _ => s.default.into(),
            },
            min: s.range.map(|r| r.0),
            max: s.range.map(|r| r.1),
            below: s.below.map(|b| b.variable),
            choices: match s.unit {
                Unit::Choice(c) => Some(c),
                _ => None,
            },
            description: s.meaning,
        })
        .collect();
    let table = Table {
        generated: "from shared/src/config/settings.rs by `JOINKEEPER_WRITE_SETTINGS=1 cargo test -p joinkeeper --lib settings_table`; do not edit",
        settings: rows,
    };
    serde_json::to_string_pretty(&table).expect("serializable") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_lists_every_setting_with_its_default() {
        let path = format!("{}/../README.md", env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(path).expect("README");
        for s in SETTINGS {
            let row = format!("| `{}` | `{}` |", s.variable, s.default);
            assert!(readme.contains(&row), "README lacks the row {row}");
        }
    }

    #[test]
    fn every_row_is_consistent() {
        for s in SETTINGS {
            let numeric = matches!(s.unit, Unit::Seconds | Unit::Millis | Unit::Count);
            assert_eq!(
                numeric,
                s.range.is_some(),
                "{}: a number has a range",
                s.variable
            );
            if let Some((min, max)) = s.range {
                let d: u64 = s.default.parse().expect("numeric default");
                assert!(
                    min <= d && d <= max,
                    "{}: default outside its range",
                    s.variable
                );
            }
            if let Some(b) = s.below {
                assert!(SETTINGS.iter().any(|t| t.variable == b.variable));
                assert_eq!(
                    b.unit, s.unit,
                    "{}: below a setting of its unit",
                    s.variable
                );
                let (own, bound): (u64, u64) =
                    (s.default.parse().unwrap(), b.default.parse().unwrap());
                assert!(
                    own < bound,
                    "{}: default not below {}",
                    s.variable,
                    b.variable
                );
            }
            let n = SETTINGS.iter().filter(|t| t.name == s.name).count();
            assert_eq!(n, 1, "{}: one row per name", s.name);
        }
    }

    /// `infra/lib/settings.json` is this table; the CDK app validates against it.
    #[test]
    fn settings_table_is_exported_to_the_cdk_app() {
        let path = format!("{}/../infra/lib/settings.json", env!("CARGO_MANIFEST_DIR"));
        let want = settings_json();
        if std::env::var_os("JOINKEEPER_WRITE_SETTINGS").is_some() {
            std::fs::write(&path, &want).expect("write infra/lib/settings.json");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "infra/lib/settings.json is out of date with shared/src/config/settings.rs; regenerate it: \
             JOINKEEPER_WRITE_SETTINGS=1 cargo test -p joinkeeper --lib settings_table"
        );
    }
}
