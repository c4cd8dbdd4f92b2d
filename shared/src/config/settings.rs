//! The configuration table: every environment variable, its default and meaning.

/// One row of the configuration table (also rendered in the README).
pub struct Setting {
    pub variable: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const PARAMETER_PREFIX: Setting = Setting {
    variable: "JOINKEEPER_PARAMETER_PREFIX",
    default: "/joinkeeper",
    meaning: "Parameter Store prefix; a cluster's record is <prefix>/<cluster>/join-record",
};
pub const TOKEN_TTL: Setting = Setting {
    variable: "JOINKEEPER_TOKEN_TTL_SECONDS",
    default: "7200",
    meaning: "lifetime of each bootstrap token the control plane creates (600–604800); short, since joinkeeper rotates ahead of expiry: a leaked record is worth at most this long",
};
pub const REFRESH_MARGIN: Setting = Setting {
    variable: "JOINKEEPER_REFRESH_MARGIN_SECONDS",
    default: "3600",
    meaning: "rotate when less than this remains before expiry; below the TTL and above the join deadline, so with the 10-minute schedule a record gets six chances to rotate before a worker could meet an expired token",
};
pub const COMMAND_DEADLINE: Setting = Setting {
    variable: "JOINKEEPER_COMMAND_DEADLINE_SECONDS",
    default: "120",
    meaning: "overall deadline for one Run Command invocation (send + wait) (5–3600)",
};
pub const COMMAND_POLL: Setting = Setting {
    variable: "JOINKEEPER_COMMAND_POLL_MILLIS",
    default: "1000",
    meaning: "interval between Run Command status polls (50–60000)",
};
pub const JOIN_DEADLINE: Setting = Setting {
    variable: "JOINKEEPER_JOIN_DEADLINE_SECONDS",
    default: "900",
    meaning: "how long a new worker may take to become Ready before its launch is abandoned",
};
pub const DRAIN_TIMEOUT: Setting = Setting {
    variable: "JOINKEEPER_DRAIN_TIMEOUT_SECONDS",
    default: "300",
    meaning: "how long a drain may take on scale-in before the hook completes anyway",
};
pub const FUNCTION_TIMEOUT: Setting = Setting {
    variable: "JOINKEEPER_FUNCTION_TIMEOUT_SECONDS",
    default: "900",
    meaning: "the functions' Lambda timeout (set by the account stack); settings that cannot fit in it are refused at start-up (30–900)",
};

pub const HOOK_PREFIX: Setting = Setting {
    variable: "JOINKEEPER_HOOK_PREFIX",
    default: "joinkeeper-",
    meaning: "only lifecycle hooks whose name starts with this are completed or heartbeated (the infra's hookNamePrefix)",
};

pub const ROGUE_GRACE: Setting = Setting {
    variable: "JOINKEEPER_ROGUE_NODE_GRACE_SECONDS",
    default: "900",
    meaning: "a Node that no running instance of the cluster stands behind is cordoned and reported once older than this",
};

pub const DELETE_ROGUE: Setting = Setting {
    variable: "JOINKEEPER_DELETE_ROGUE_NODES",
    default: "false",
    meaning: "also delete such Nodes (true/false); off by default, cordon and report only",
};

pub const NODES_DOCUMENT: Setting = Setting {
    variable: "JOINKEEPER_NODES_DOCUMENT",
    default: "joinkeeper-nodes",
    meaning: "SSM Command document that lists every Node with its providerID and age",
};

pub const CORDON_DOCUMENT: Setting = Setting {
    variable: "JOINKEEPER_CORDON_DOCUMENT",
    default: "joinkeeper-cordon",
    meaning: "SSM Command document that cordons (optionally deletes) one Node",
};
pub const NODE_POLL: Setting = Setting {
    variable: "JOINKEEPER_NODE_POLL_SECONDS",
    default: "15",
    meaning: "interval between Node status checks while a hook waits",
};
pub const REGENERATE_DOCUMENT: Setting = Setting {
    variable: "JOINKEEPER_REGENERATE_DOCUMENT",
    default: "joinkeeper-regenerate",
    meaning: "SSM Command document that mints a new token and writes the record",
};
pub const NODE_STATUS_DOCUMENT: Setting = Setting {
    variable: "JOINKEEPER_NODE_STATUS_DOCUMENT",
    default: "joinkeeper-node-status",
    meaning: "SSM Command document that reports Nodes' Ready condition",
};
pub const DRAIN_DOCUMENT: Setting = Setting {
    variable: "JOINKEEPER_DRAIN_DOCUMENT",
    default: "joinkeeper-drain",
    meaning: "SSM Command document that cordons, drains and deletes a Node",
};
pub const JOIN_LOG_DOCUMENT: Setting = Setting {
    variable: "JOINKEEPER_JOIN_LOG_DOCUMENT",
    default: "joinkeeper-join-log",
    meaning: "SSM Command document that prints the tail of a worker's join log",
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
    &FUNCTION_TIMEOUT,
    &HOOK_PREFIX,
    &ROGUE_GRACE,
    &DELETE_ROGUE,
    &NODE_POLL,
    &REGENERATE_DOCUMENT,
    &NODE_STATUS_DOCUMENT,
    &DRAIN_DOCUMENT,
    &JOIN_LOG_DOCUMENT,
    &NODES_DOCUMENT,
    &CORDON_DOCUMENT,
];

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
}
