//! Configuration from environment variables, each with a documented default, validated once at
//! start-up. An invalid value stops the function before it serves anything, with an error that
//! names the variable.

use std::time::Duration;

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
    default: "86400",
    meaning: "lifetime of each bootstrap token the control plane creates (600–604800)",
};
pub const REFRESH_MARGIN: Setting = Setting {
    variable: "JOINKEEPER_REFRESH_MARGIN_SECONDS",
    default: "28800",
    meaning: "rotate when less than this remains before expiry; must be below the TTL",
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
pub const HOOK_CHECK: Setting = Setting {
    variable: "JOINKEEPER_HOOK_CHECK_SECONDS",
    default: "600",
    meaning: "how long one hook invocation keeps checking before leaving the rest to the sweep (well under Lambda's 900 s)",
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
    &HOOK_CHECK,
    &NODE_POLL,
    &REGENERATE_DOCUMENT,
    &NODE_STATUS_DOCUMENT,
    &DRAIN_DOCUMENT,
    &JOIN_LOG_DOCUMENT,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration: {variable}={value} is not valid: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

/// Names of the SSM documents the functions run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Documents {
    pub regenerate: String,
    pub node_status: String,
    pub drain: String,
    pub join_log: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub parameter_prefix: String,
    pub token_ttl: Duration,
    pub refresh_margin: Duration,
    pub command_deadline: Duration,
    pub command_poll: Duration,
    pub join_deadline: Duration,
    pub drain_timeout: Duration,
    pub hook_check: Duration,
    pub node_poll: Duration,
    pub documents: Documents,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (injected so tests need no process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |s: &Setting| {
            lookup(s.variable)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| s.default.to_owned())
        };
        let secs = |s: &'static Setting, min: u64, max: u64| -> Result<Duration, ConfigError> {
            let raw = get(s);
            number(s, &raw, min, max).map(Duration::from_secs)
        };

        let parameter_prefix = get(&PARAMETER_PREFIX);
        validate_prefix(&parameter_prefix)?;
        let token_ttl = secs(&TOKEN_TTL, 600, 604_800)?;
        let refresh_margin = secs(&REFRESH_MARGIN, 60, 604_800)?;
        if refresh_margin >= token_ttl {
            return Err(ConfigError {
                variable: REFRESH_MARGIN.variable,
                value: refresh_margin.as_secs().to_string(),
                reason: format!(
                    "must be below {} ({})",
                    TOKEN_TTL.variable,
                    token_ttl.as_secs()
                ),
            });
        }
        let command_deadline = secs(&COMMAND_DEADLINE, 5, 3600)?;
        let poll_raw = get(&COMMAND_POLL);
        let command_poll = Duration::from_millis(number(&COMMAND_POLL, &poll_raw, 50, 60_000)?);
        let join_deadline = secs(&JOIN_DEADLINE, 10, 7200)?;
        if join_deadline >= token_ttl {
            return Err(ConfigError {
                variable: JOIN_DEADLINE.variable,
                value: join_deadline.as_secs().to_string(),
                reason: format!(
                    "must be below {} ({})",
                    TOKEN_TTL.variable,
                    token_ttl.as_secs()
                ),
            });
        }
        let drain_timeout = secs(&DRAIN_TIMEOUT, 10, 7200)?;
        let hook_check = secs(&HOOK_CHECK, 0, 840)?;
        let node_poll = secs(&NODE_POLL, 1, 300)?;
        let documents = Documents {
            regenerate: document(&REGENERATE_DOCUMENT, get(&REGENERATE_DOCUMENT))?,
            node_status: document(&NODE_STATUS_DOCUMENT, get(&NODE_STATUS_DOCUMENT))?,
            drain: document(&DRAIN_DOCUMENT, get(&DRAIN_DOCUMENT))?,
            join_log: document(&JOIN_LOG_DOCUMENT, get(&JOIN_LOG_DOCUMENT))?,
        };
        Ok(Config {
            parameter_prefix,
            token_ttl,
            refresh_margin,
            command_deadline,
            command_poll,
            join_deadline,
            drain_timeout,
            hook_check,
            node_poll,
            documents,
        })
    }

    /// The record's parameter name for a cluster.
    pub fn record_parameter(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/join-record", self.parameter_prefix, cluster)
    }

    /// The single-flight lock's parameter name for a cluster.
    pub fn lock_parameter(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/regenerate-lock", self.parameter_prefix, cluster)
    }
}

fn number(s: &'static Setting, raw: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let fail = |reason: String| ConfigError {
        variable: s.variable,
        value: crate::names::printable(raw, 40),
        reason,
    };
    let n: u64 = raw
        .trim()
        .parse()
        .map_err(|_| fail("expected a whole number".into()))?;
    if n < min || n > max {
        return Err(fail(format!("expected {min} to {max}")));
    }
    Ok(n)
}

fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let ok = prefix.starts_with('/')
        && !prefix.ends_with('/')
        && prefix.len() <= 200
        && !prefix.contains("//")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError {
            variable: PARAMETER_PREFIX.variable,
            value: crate::names::printable(prefix, 40),
            reason: "expected a path like /joinkeeper: starts with '/', no trailing '/', [A-Za-z0-9_.-/]".into(),
        })
    }
}

fn document(s: &'static Setting, name: String) -> Result<String, ConfigError> {
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(ConfigError {
            variable: s.variable,
            value: crate::names::printable(&name, 40),
            reason: "expected an SSM document name ([A-Za-z0-9_.-]{3,128})".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = with(&[]).expect("defaults are valid");
        assert_eq!(c.parameter_prefix, "/joinkeeper");
        assert_eq!(c.token_ttl, Duration::from_secs(24 * 3600));
        assert_eq!(c.refresh_margin, Duration::from_secs(8 * 3600));
        assert_eq!(c.command_deadline, Duration::from_secs(120));
        assert_eq!(c.command_poll, Duration::from_millis(1000));
        assert_eq!(c.documents.regenerate, "joinkeeper-regenerate");
        let cluster = crate::names::ClusterName::parse("demo").expect("valid");
        assert_eq!(c.record_parameter(&cluster), "/joinkeeper/demo/join-record");
        assert_eq!(
            c.lock_parameter(&cluster),
            "/joinkeeper/demo/regenerate-lock"
        );
    }

    #[test]
    fn overrides_are_read() {
        let c = with(&[
            ("JOINKEEPER_PARAMETER_PREFIX", "/k8s/jk"),
            ("JOINKEEPER_COMMAND_POLL_MILLIS", "100"),
        ])
        .expect("valid");
        assert_eq!(c.parameter_prefix, "/k8s/jk");
        assert_eq!(c.command_poll, Duration::from_millis(100));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("JOINKEEPER_PARAMETER_PREFIX", "joinkeeper"),
            ("JOINKEEPER_PARAMETER_PREFIX", "/joinkeeper/"),
            ("JOINKEEPER_PARAMETER_PREFIX", "/a b"),
            ("JOINKEEPER_TOKEN_TTL_SECONDS", "24h"),
            ("JOINKEEPER_TOKEN_TTL_SECONDS", "10"),
            ("JOINKEEPER_REFRESH_MARGIN_SECONDS", "86400"),
            ("JOINKEEPER_COMMAND_DEADLINE_SECONDS", "-1"),
            ("JOINKEEPER_COMMAND_POLL_MILLIS", "1"),
            ("JOINKEEPER_REGENERATE_DOCUMENT", "doc;rm -rf /"),
        ];
        for (var, value) in cases {
            let err = with(&[(var, value)]).expect_err(var);
            assert_eq!(err.variable, var, "{value}");
            assert!(err.to_string().contains(var));
        }
    }
}
