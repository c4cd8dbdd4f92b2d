//! `joinkeeper status`: what an operator on call needs to see about each cluster, read with the
//! same code the functions use (the record's meta, the fleet, the reconciler's gather). Never the
//! token's secret: the record itself is not even read, only its version.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::Serialize;
use time::OffsetDateTime;

use joinkeeper::freshness::Freshness;
use joinkeeper::lease::{now_ms, LeaseValue};
use joinkeeper::lifecycle::WaitState;
use joinkeeper::names::{ClusterName, InstanceId};
use joinkeeper::reconcile::{drain, gather};
use joinkeeper::regenerate::record_state;
use joinkeeper::timefmt::rfc3339;
use joinkeeper::Context;

pub use crate::planes::{control_planes, ControlPlane};
use crate::{human, CliError};
use joinkeeper::identity::Impostor;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub clusters: Vec<ClusterStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    /// `shared` or `per-instance` (`<prefix>/<cluster>/join-mode`); `unknown` when unreadable.
    pub join_mode: &'static str,
    pub record: RecordStatus,
    pub control_planes: Vec<ControlPlane>,
    /// At least one control plane can run a command (regenerate, node status, drain).
    pub reachable: bool,
    /// Instances tagged as control planes without the cluster's control-plane instance profile.
    pub impostors: Vec<Impostor>,
    pub leases: Vec<LeaseStatus>,
    pub waiting: Vec<WaitingAction>,
    /// Nodes left in place by drains that did not end clean, until their instances are gone
    /// (then deleted), with the pods that kept them.
    pub left_nodes: Vec<LeftNode>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LeftNode {
    pub instance: String,
    pub node: String,
    /// `ns/pod (why)`: why is `pdb`, `unmanaged`, `local-storage`, `terminating` or `eviction`.
    pub blocked_pods: Vec<String>,
}

/// The join record as its metadata describes it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordStatus {
    /// `fresh`, `expires-soon` (inside the refresh margin), `missing`, `expired` or `corrupt`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// When the token was minted: the last regeneration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// 0 once expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_version: Option<i64>,
    /// The control plane that wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_by: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LeaseStatus {
    /// `regenerate` or `reconcile`.
    pub name: &'static str,
    pub held_by: String,
    /// Negative once expired (a holder that died; the next caller takes it over).
    pub expires_in_seconds: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WaitingAction {
    pub instance: String,
    pub group: String,
    /// The AWS lifecycle state (`Pending:Wait`, `Terminating:Wait`, ...).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<String>,
    /// Since the instance launched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    /// Since its drain started, when one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draining_seconds: Option<u64>,
}

/// Reads the status of each cluster.
pub async fn gather(ctx: &Context, clusters: &[ClusterName]) -> Result<Report, CliError> {
    let mut out = Vec::new();
    for cluster in clusters {
        out.push(cluster_status(ctx, cluster).await?);
    }
    Ok(Report { clusters: out })
}

async fn cluster_status(ctx: &Context, cluster: &ClusterName) -> Result<ClusterStatus, CliError> {
    let planes = control_planes(ctx, cluster).await?;
    let drains = drain::load_all(ctx, cluster).await?;
    Ok(ClusterStatus {
        cluster: cluster.to_string(),
        join_mode: joinkeeper::reconcile::tokens::read_mode(ctx, cluster)
            .await
            .map_or("unknown", |m| m.as_str()),
        record: record(ctx, cluster).await?,
        reachable: planes.genuine.iter().any(|c| c.reachable),
        control_planes: planes.genuine,
        impostors: planes.impostors,
        leases: leases(ctx, cluster).await?,
        waiting: waiting(ctx, cluster, &drains).await?,
        left_nodes: left_nodes(&drains),
    })
}

async fn record(ctx: &Context, cluster: &ClusterName) -> Result<RecordStatus, CliError> {
    let read = record_state(ctx, cluster, ctx.config.refresh_margin).await?;
    let verdict = read.verdict;
    let now = OffsetDateTime::now_utc();
    let secs = |d: time::Duration| u64::try_from(d.whole_seconds()).unwrap_or(0);
    let mut status = RecordStatus {
        state: verdict.label(),
        detail: match &verdict {
            Freshness::Corrupt { reason } => Some(reason.clone()),
            _ => None,
        },
        token_id: None,
        created_at: None,
        age_seconds: None,
        expires_at: None,
        remaining_seconds: None,
        record_version: read.version,
        written_by: None,
    };
    if let Some(meta) = &read.meta {
        status.token_id = Some(meta.token_id.clone());
        status.created_at = Some(rfc3339(meta.created_at));
        status.age_seconds = Some(secs(now - meta.created_at));
        status.expires_at = Some(rfc3339(meta.expires_at));
        status.remaining_seconds = Some(secs(meta.expires_at - now));
        status.written_by = Some(meta.written_by.clone()).filter(|w| !w.is_empty());
    }
    Ok(status)
}

async fn leases(ctx: &Context, cluster: &ClusterName) -> Result<Vec<LeaseStatus>, CliError> {
    let mut found = Vec::new();
    for name in ["regenerate", "reconcile"] {
        let parameter = ctx.config.lease_parameter(cluster, name);
        if let Some((value, _)) = ctx.leases.read(&parameter).await? {
            let value: LeaseValue = value.unwrap_or_default();
            found.push(LeaseStatus {
                name,
                held_by: if value.request_id.is_empty() {
                    value.holder
                } else {
                    value.request_id
                },
                expires_in_seconds: (value.expires_at_ms - now_ms()) / 1000,
            });
        }
    }
    Ok(found)
}

/// Pure: the Nodes the drain records say were left in place, by instance.
fn left_nodes(drains: &HashMap<InstanceId, drain::DrainRecord>) -> Vec<LeftNode> {
    let mut out: Vec<LeftNode> = drains
        .iter()
        .filter_map(|(i, r)| {
            Some(LeftNode {
                instance: i.to_string(),
                node: r.left_node.clone()?,
                blocked_pods: r.blocked.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.instance.cmp(&b.instance));
    out
}

async fn waiting(
    ctx: &Context,
    cluster: &ClusterName,
    drains: &HashMap<InstanceId, drain::DrainRecord>,
) -> Result<Vec<WaitingAction>, CliError> {
    let view = gather::gather(ctx, cluster, &mut HashMap::new()).await?;
    if view.waiting.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<_> = view.waiting.iter().map(|w| w.instance.clone()).collect();
    let facts = ctx.fleet.instances(&ids).await?;
    let now = OffsetDateTime::now_utc();
    let mut out: Vec<WaitingAction> = view
        .waiting
        .iter()
        .map(|w| {
            let launched = facts.get(&w.instance).and_then(|f| f.launched);
            WaitingAction {
                instance: w.instance.to_string(),
                group: w.group.to_string(),
                state: w.state.as_str(),
                launched_at: launched.map(rfc3339),
                age_seconds: launched
                    .map(|l| u64::try_from((now - l).whole_seconds()).unwrap_or(0)),
                draining_seconds: drains
                    .get(&w.instance)
                    .filter(|d| d.left_node.is_none() && w.state != WaitState::PendingWait)
                    .map(|d| drain::running_for(d).as_secs()),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.group, &a.instance).cmp(&(&b.group, &b.instance)));
    Ok(out)
}

/// Text for people, or one JSON document.
pub fn render(report: &Report, json: bool, out: &mut dyn Write) -> io::Result<()> {
    if json {
        return writeln!(out, "{}", serde_json::to_string_pretty(report)?);
    }
    if report.clusters.is_empty() {
        return writeln!(
            out,
            "no cluster found: nothing is tagged joinkeeper:cluster in this account and region"
        );
    }
    for (i, c) in report.clusters.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        render_cluster(c, out)?;
    }
    Ok(())
}

const LABEL: usize = 17;

fn render_cluster(c: &ClusterStatus, out: &mut dyn Write) -> io::Result<()> {
    let row =
        |out: &mut dyn Write, label: &str, text: &str| writeln!(out, "  {label:<LABEL$}{text}");
    writeln!(out, "cluster {}", c.cluster)?;
    row(out, "join mode", c.join_mode)?;
    let r = &c.record;
    let mut line = r.state.to_owned();
    if let (Some(token), Some(expires), Some(left)) =
        (&r.token_id, &r.expires_at, r.remaining_seconds)
    {
        let when = if left == 0 {
            "expired".to_owned()
        } else {
            format!("in {}", human(left))
        };
        line = format!("{line}: token {token}, expires {expires} ({when})");
    } else if let Some(detail) = &r.detail {
        line = format!("{line}: {detail}");
    }
    row(out, "join record", &line)?;
    if let (Some(created), Some(age)) = (&r.created_at, r.age_seconds) {
        let by = r
            .written_by
            .as_deref()
            .map(|w| format!(" by {w}"))
            .unwrap_or_default();
        let version = r
            .record_version
            .map(|v| format!(", record version {v}"))
            .unwrap_or_default();
        row(
            out,
            "",
            &format!(
                "last regenerated {created} ({} ago){by}{version}",
                human(age)
            ),
        )?;
    }
    if c.control_planes.is_empty() {
        row(
            out,
            "control planes",
            "none (no instance tagged joinkeeper:role=control-plane with the cluster's control-plane instance profile)",
        )?;
    }
    for (i, cp) in c.control_planes.iter().enumerate() {
        let ssm = if cp.ssm_online {
            "SSM online"
        } else {
            "SSM offline"
        };
        let verdict = if cp.reachable {
            "reachable"
        } else {
            "unreachable"
        };
        let label = if i == 0 { "control planes" } else { "" };
        row(
            out,
            label,
            &format!("{}  {:<8} {:<11}  {verdict}", cp.instance, cp.state, ssm),
        )?;
    }
    crate::planes::render_impostors(&c.impostors, &c.cluster, &row, out)?;
    if !c.reachable {
        row(
            out,
            "",
            "no control plane reachable: the record cannot be regenerated, new workers wait",
        )?;
    }
    if c.leases.is_empty() {
        row(out, "leases", "none held")?;
    }
    for (i, l) in c.leases.iter().enumerate() {
        let until = if l.expires_in_seconds >= 0 {
            format!("expires in {}", human(l.expires_in_seconds as u64))
        } else {
            format!(
                "expired {} ago, left over",
                human(l.expires_in_seconds.unsigned_abs())
            )
        };
        let label = if i == 0 { "leases" } else { "" };
        row(
            out,
            label,
            &format!("{} held by {} ({until})", l.name, l.held_by),
        )?;
    }
    for (i, l) in c.left_nodes.iter().enumerate() {
        let label = if i == 0 { "left Nodes" } else { "" };
        let blocked = if l.blocked_pods.is_empty() {
            String::new()
        } else {
            format!(", drain blocked by {}", l.blocked_pods.join(", "))
        };
        row(
            out,
            label,
            &format!(
                "{}  of {} (deleted once the instance is gone){blocked}",
                l.node, l.instance
            ),
        )?;
    }
    if c.waiting.is_empty() {
        return row(out, "waiting actions", "none");
    }
    row(out, "waiting actions", &c.waiting.len().to_string())?;
    for w in &c.waiting {
        let age = w
            .age_seconds
            .map(|a| format!("launched {} ago", human(a)))
            .unwrap_or_else(|| "instance gone".into());
        let drain = w
            .draining_seconds
            .map(|d| format!(", draining for {}", human(d)))
            .unwrap_or_default();
        row(
            out,
            "",
            &format!("{}  {}  {:<24}  {age}{drain}", w.instance, w.group, w.state),
        )?;
    }
    Ok(())
}
