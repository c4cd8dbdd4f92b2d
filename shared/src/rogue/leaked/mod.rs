//! After a leak: revoking tokens stops new joins, not the Nodes that already joined with them.
//! `joinkeeper rotate --revoke-all` hands the revoke document's facts (which token each recent
//! Node's kubelet bootstrapped with) to [`check`], which lists the Nodes and the instances as the
//! rogue check does, judges ([`judge`]) and cordons or deletes on the operator's request.

pub mod judge;

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tracing::warn;

use crate::context::{Context, Invocation};
use crate::names::{ClusterName, InstanceId};
use crate::nodes::joins::Joins;
use judge::{revoked_join, suspects, Plan};

use super::{act, cordon, fleet, list, Act, Mode};

/// One Node that joined with a revoked token and that no instance of the cluster owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeakedNode {
    pub node: String,
    pub token_id: String,
    pub reason: String,
    /// `reported`, `cordoned`, `deleted`, `already-cordoned`, `absent`, `held: …` (never acted
    /// on), `not yet: …` or `failed: …`.
    pub action: String,
}

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LeakCheck {
    /// `report`, `cordon` or `delete`: what the operator asked for.
    pub mode: String,
    /// False when the control plane could not read the CertificateSigningRequests.
    pub joins_known: bool,
    /// Joins (still on record: about the last hour) made with a revoked or vanished token.
    pub joins_with_revoked_tokens: usize,
    /// Joins the control plane saw but did not print (its output is bounded): not judged.
    pub joins_left_out: usize,
    /// False when the Node listing was cut or held lines that were not understood.
    pub listing_complete: bool,
    pub nodes: Vec<LeakedNode>,
}

/// Why the check could not be made (the rotation itself stands).
#[derive(Debug, thiserror::Error)]
pub enum LeakError {
    #[error("the Nodes could not be listed on {0}")]
    NodesUnreadable(InstanceId),
    #[error("EC2 could not be asked which instances stand behind the Nodes")]
    FleetUnreadable,
}

/// Judges the Nodes named by the `joins` that the revoke document reported on `cp` (the control
/// plane that revoked `revoked`), and cordons or deletes the suspects when `mode` asks for it.
pub async fn check(
    ctx: &Context,
    cluster: &ClusterName,
    cp: &InstanceId,
    (joins, revoked): (&Joins, &[String]),
    mode: Mode,
    inv: &Invocation,
) -> Result<LeakCheck, LeakError> {
    let relevant = joins
        .list
        .iter()
        .filter(|j| revoked_join(j, revoked))
        .count();
    let mut report = LeakCheck {
        mode: format!("{mode:?}").to_lowercase(),
        joins_known: joins.known,
        joins_with_revoked_tokens: relevant,
        joins_left_out: joins.left_out,
        listing_complete: true,
        nodes: Vec::new(),
    };
    if relevant == 0 {
        return Ok(report);
    }
    let (nodes, complete) = list(ctx, cluster, cp, inv, None)
        .await
        .ok_or_else(|| LeakError::NodesUnreadable(cp.clone()))?;
    let fleet = fleet(ctx, cluster, &nodes)
        .await
        .ok_or(LeakError::FleetUnreadable)?;
    report.listing_complete = complete;
    let now = OffsetDateTime::now_utc();
    for s in suspects(
        &joins.list,
        revoked,
        &nodes,
        &fleet,
        now,
        ctx.config.rogue_grace,
    ) {
        let action = match (s.plan, act(mode, s.cordoned)) {
            (Plan::Hold, _) => "held: never acted on".to_owned(),
            (_, Act::Report) => "reported".to_owned(),
            (_, Act::AlreadyCordoned) => "already-cordoned".to_owned(),
            _ if inv.deadline.is_near(Duration::from_secs(15)) => {
                "not yet: out of time; run again".to_owned()
            }
            (_, a) => cordon(ctx, cluster, cp, &s.node, a == Act::Delete, inv).await,
        };
        warn!(cluster = %cluster, node = %s.node, token_id = %s.token_id, reason = %s.reason, action = %action, "Node joined with a revoked token");
        ctx.metrics.record(crate::metrics::rogue_node(
            cluster.as_str(),
            &s.node,
            &action,
        ));
        report.nodes.push(LeakedNode {
            node: s.node,
            token_id: s.token_id,
            reason: s.reason,
            action,
        });
    }
    Ok(report)
}
