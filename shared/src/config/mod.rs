//! Configuration from environment variables, each with a documented default, validated once at
//! start-up. An invalid value stops the function before it serves anything, with an error that
//! names the variable.

use std::time::Duration;

mod profiles;
mod settings;
pub use profiles::ControlPlaneProfiles;
pub use settings::*;

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
    pub nodes: String,
    pub cordon: String,
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
    /// Label out of load balancers → action completed, at least (see [`DEREGISTRATION_DELAY`]).
    pub deregistration_delay: Duration,
    /// Drains running at once per cluster.
    pub drain_concurrency: usize,
    pub function_timeout: Duration,
    pub hook_prefix: String,
    pub rogue_grace: Duration,
    pub node_poll: Duration,
    pub documents: Documents,
    /// Which instance profiles make a control plane (see [`crate::identity`]).
    pub control_plane_profiles: ControlPlaneProfiles,
    /// What the exits without a hook do ([`crate::exits`]).
    pub exits: crate::exits::ExitSettings,
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
        let number = |s: &'static Setting| number(s, &get(s));
        let secs = |s: &'static Setting| number(s).map(Duration::from_secs);

        let parameter_prefix = get(&PARAMETER_PREFIX);
        validate_prefix(&parameter_prefix)?;
        let token_ttl = secs(&TOKEN_TTL)?;
        let refresh_margin = secs(&REFRESH_MARGIN)?;
        let command_deadline = secs(&COMMAND_DEADLINE)?;
        let command_poll = Duration::from_millis(number(&COMMAND_POLL)?);
        let join_deadline = secs(&JOIN_DEADLINE)?;
        let drain_timeout = secs(&DRAIN_TIMEOUT)?;
        let deregistration_delay = secs(&DEREGISTRATION_DELAY)?;
        let drain_concurrency = number(&DRAIN_CONCURRENCY)? as usize;
        let node_poll = secs(&NODE_POLL)?;
        let function_timeout = secs(&FUNCTION_TIMEOUT)?;
        let rogue_grace = secs(&ROGUE_GRACE)?;
        // The table's "below" rules (the same ones the CDK app checks).
        let durations = [
            (&TOKEN_TTL, token_ttl),
            (&REFRESH_MARGIN, refresh_margin),
            (&COMMAND_DEADLINE, command_deadline),
            (&JOIN_DEADLINE, join_deadline),
            (&DRAIN_TIMEOUT, drain_timeout),
            (&NODE_POLL, node_poll),
            (&FUNCTION_TIMEOUT, function_timeout),
            (&ROGUE_GRACE, rogue_grace),
        ];
        for (s, value) in durations {
            let Some(limit) = s.below else { continue };
            let Some(&(_, bound)) = durations.iter().find(|(t, _)| t.variable == limit.variable)
            else {
                continue;
            };
            if value >= bound {
                return Err(ConfigError {
                    variable: s.variable,
                    value: value.as_secs().to_string(),
                    reason: format!("must be below {} ({})", limit.variable, bound.as_secs()),
                });
            }
        }
        // Every single wait must fit in one invocation with room for the calls around it.
        let fits = |s: &'static Setting, value: Duration, ok: bool, rule: &str| {
            if ok {
                return Ok(());
            }
            Err(ConfigError {
                variable: s.variable,
                value: value.as_secs().to_string(),
                reason: format!(
                    "{rule} ({} = {})",
                    FUNCTION_TIMEOUT.variable,
                    function_timeout.as_secs()
                ),
            })
        };
        fits(
            &COMMAND_DEADLINE,
            command_deadline,
            command_deadline + Duration::from_secs(20) <= function_timeout,
            "a Run Command wait must fit in the function timeout with 20 s to spare",
        )?;
        fits(
            &NODE_POLL,
            node_poll,
            node_poll * 2 <= function_timeout,
            "at most half the function timeout",
        )?;
        let hook_prefix = get(&HOOK_PREFIX);
        let prefix_ok = (1..=200).contains(&hook_prefix.len())
            && hook_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !prefix_ok {
            return Err(ConfigError {
                variable: HOOK_PREFIX.variable,
                value: crate::names::printable(&hook_prefix, 40),
                reason: "expected 1 to 200 of [A-Za-z0-9_.-]".into(),
            });
        }
        let documents = Documents {
            regenerate: document(&REGENERATE_DOCUMENT, get(&REGENERATE_DOCUMENT))?,
            node_status: document(&NODE_STATUS_DOCUMENT, get(&NODE_STATUS_DOCUMENT))?,
            drain: document(&DRAIN_DOCUMENT, get(&DRAIN_DOCUMENT))?,
            join_log: document(&JOIN_LOG_DOCUMENT, get(&JOIN_LOG_DOCUMENT))?,
            nodes: document(&NODES_DOCUMENT, get(&NODES_DOCUMENT))?,
            cordon: document(&CORDON_DOCUMENT, get(&CORDON_DOCUMENT))?,
        };
        let control_plane_profiles = ControlPlaneProfiles::parse(&get(&CONTROL_PLANE_PROFILES))?;
        let exits = crate::exits::ExitSettings {
            rebalance: exit_action(&REBALANCE_ACTION, &get(&REBALANCE_ACTION))?,
            standby: exit_action(&STANDBY_ACTION, &get(&STANDBY_ACTION))?,
            maintenance_lead: secs(&MAINTENANCE_LEAD)?,
            maintenance_replace: boolean(&MAINTENANCE_REPLACE, &get(&MAINTENANCE_REPLACE))?,
            drain_timeout,
        };
        Ok(Config {
            exits,
            control_plane_profiles,
            parameter_prefix,
            token_ttl,
            refresh_margin,
            command_deadline,
            command_poll,
            join_deadline,
            drain_timeout,
            deregistration_delay,
            drain_concurrency,
            function_timeout,
            hook_prefix,
            rogue_grace,
            node_poll,
            documents,
        })
    }

    /// The record's parameter name for a cluster.
    pub fn record_parameter(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/join-record", self.parameter_prefix, cluster)
    }

    /// The record's non-secret metadata (see [`crate::meta`]).
    pub fn meta_parameter(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/join-record-meta", self.parameter_prefix, cluster)
    }

    /// What the rogue check may do on a cluster (`report`, `cordon`, `delete`; see
    /// [`crate::rogue::Mode`]), set by the cluster's operator.
    pub fn rogue_mode_parameter(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/rogue-nodes", self.parameter_prefix, cluster)
    }

    /// How the cluster's workers join (`shared`, the default, or `per-instance`; see
    /// [`crate::reconcile::tokens`]), set by the cluster stack.
    pub fn join_mode_parameter(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/join-mode", self.parameter_prefix, cluster)
    }

    /// The folder of a cluster's per-instance join records, `join/<instance-id>` (see
    /// [`crate::reconcile::tokens`]); written by its control planes, never read by the functions.
    pub fn instance_records_path(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/join", self.parameter_prefix, cluster)
    }

    /// The folder of a cluster's leases (see [`crate::lease`]).
    pub fn lease_path(&self, cluster: &crate::names::ClusterName) -> String {
        format!("{}/{}/leases", self.parameter_prefix, cluster)
    }

    /// One lease's parameter name: `regenerate`, `reconcile`, `drain-<instance>`.
    pub fn lease_parameter(&self, cluster: &crate::names::ClusterName, lease: &str) -> String {
        format!("{}/{lease}", self.lease_path(cluster))
    }
}

/// One of the setting's words, read as an exit action.
fn exit_action(s: &'static Setting, raw: &str) -> Result<crate::exits::ExitAction, ConfigError> {
    crate::exits::ExitAction::parse(raw).ok_or_else(|| ConfigError {
        variable: s.variable,
        value: crate::names::printable(raw, 40),
        reason: format!("expected one of {}", EXIT_ACTIONS.join(", ")),
    })
}

/// `true` or `false`.
fn boolean(s: &'static Setting, raw: &str) -> Result<bool, ConfigError> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError {
            variable: s.variable,
            value: crate::names::printable(raw, 40),
            reason: "expected true or false".into(),
        }),
    }
}

/// A whole number within the setting's range (from the table).
fn number(s: &'static Setting, raw: &str) -> Result<u64, ConfigError> {
    let fail = |reason: String| ConfigError {
        variable: s.variable,
        value: crate::names::printable(raw, 40),
        reason,
    };
    let (min, max) = s.range.expect("a numeric setting has a range");
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
        assert_eq!(c.token_ttl, Duration::from_secs(2 * 3600));
        assert_eq!(c.refresh_margin, Duration::from_secs(3600));
        assert!(
            c.refresh_margin > c.join_deadline,
            "a joining worker never meets an expired token"
        );
        assert_eq!(c.hook_prefix, "joinkeeper-");
        assert_eq!(c.command_deadline, Duration::from_secs(120));
        assert_eq!(c.command_poll, Duration::from_millis(1000));
        assert_eq!(c.deregistration_delay, Duration::ZERO);
        assert_eq!(c.drain_concurrency, 4);
        assert!(with(&[("JOINKEEPER_DRAIN_CONCURRENCY", "0")]).is_err());
        assert!(with(&[("JOINKEEPER_DEREGISTRATION_DELAY_SECONDS", "3601")]).is_err());
        assert_eq!(c.documents.regenerate, "joinkeeper-regenerate");
        let cluster = crate::names::ClusterName::parse("demo").expect("valid");
        assert_eq!(c.record_parameter(&cluster), "/joinkeeper/demo/join-record");
        assert_eq!(
            c.lease_parameter(&cluster, "regenerate"),
            "/joinkeeper/demo/leases/regenerate"
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
            ("JOINKEEPER_COMMAND_DEADLINE_SECONDS", "890"),
            ("JOINKEEPER_COMMAND_DEADLINE_SECONDS", "29"),
            ("JOINKEEPER_JOIN_DEADLINE_SECONDS", "6901"),
            ("JOINKEEPER_JOIN_DEADLINE_SECONDS", "7200"),
            ("JOINKEEPER_DRAIN_TIMEOUT_SECONDS", "7000"),
            ("JOINKEEPER_COMMAND_POLL_MILLIS", "50"),
            ("JOINKEEPER_FUNCTION_TIMEOUT_SECONDS", "10"),
            ("JOINKEEPER_HOOK_PREFIX", "a b"),
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
