//! The exits' part of a reconcile pass, under the cluster's reconcile lease: read the exit
//! records and where the cluster's workers are; record the exits the pass sees by itself
//! (Standby, detached, stopped: a lost event is repaired here); decide each record's next step
//! ([`crate::exits::decide`]) and take it. Drains go through the drain path
//! ([`crate::reconcile::drain`]), whose records the terminate hook follows too.

use std::collections::HashMap;
use std::time::Duration;

use tracing::{info, warn};

use crate::aws::patience::{pause_before, salt_of};
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::deadline::Deadline;
use crate::exits::decide::{next_step, seen_leaving, ExitFacts, Step, Whereabouts};
use crate::exits::node::{self, NodeOp};
use crate::exits::record::{self, ExitRecord};
use crate::exits::seen::look;
use crate::lease::now_ms;
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::decide::DrainStatus;
use crate::reconcile::drain::{self, Budget, DrainRecord, Started};

/// The exits' part of a reconcile pass ([`crate::reconcile::pass::run_pass`]): the full look at
/// the cluster's workers on the schedule (the repair of lost events) and whenever exits are
/// recorded; an error is logged and counted as one exit to look at again.
pub async fn run_in_pass(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &crate::context::Invocation,
    mem: &mut crate::reconcile::memory::Memory,
    bound: &Deadline,
) -> usize {
    let scheduled = inv.trigger == crate::context::Trigger::Schedule;
    let result = async {
        let records = record::load_all(ctx, cluster).await?;
        if records.is_empty() && !scheduled {
            return Ok(0);
        }
        let candidates = match &mem.candidates {
            Some(c) if !c.is_empty() => c.clone(),
            _ => ctx.control_plane_candidates(cluster).await?,
        };
        run(
            ctx,
            cluster,
            records,
            &mut mem.drains,
            &candidates,
            &inv.request_id,
            bound,
        )
        .await
    }
    .await;
    result.unwrap_or_else(|err: AwsCallError| {
        warn!(cluster = %cluster, error = %err, "could not look at the workers leaving without a hook; next pass");
        1
    })
}

/// Runs the exits' part of one pass; returns how many exits want another pass soon.
pub async fn run(
    ctx: &Context,
    cluster: &ClusterName,
    mut records: HashMap<InstanceId, ExitRecord>,
    drains: &mut Option<HashMap<InstanceId, DrainRecord>>,
    candidates: &[InstanceId],
    request_id: &str,
    bound: &Deadline,
) -> Result<usize, AwsCallError> {
    let recorded: Vec<InstanceId> = records.keys().cloned().collect();
    let seen = look(ctx, cluster, &recorded).await?;
    let now = now_ms();
    for (id, at) in &seen.at {
        if records.contains_key(id) {
            continue;
        }
        if let Some(door) = seen_leaving(*at) {
            let r = ExitRecord::new(door, now, None);
            record::write(ctx, cluster, id, &r).await?;
            info!(cluster = %cluster, instance = %id, door = door.as_str(), "a worker seen leaving without a hook");
            records.insert(id.clone(), r);
        }
    }
    if records.is_empty() {
        return Ok(0);
    }
    let loaded = match drains.take() {
        Some(d) => d,
        None => drain::load_all(ctx, cluster).await?,
    };
    let dr = drains.insert(loaded);
    let mut watch = 0;
    let mut ids: Vec<InstanceId> = records.keys().cloned().collect();
    ids.sort();
    for id in ids {
        if bound.is_near(Duration::from_secs(5)) {
            watch += 1;
            break;
        }
        let Some(mut r) = records.remove(&id) else {
            continue;
        };
        // Not even listed by id: EC2 no longer knows the instance (it lists a terminated one
        // for about an hour).
        let at = seen.at.get(&id).copied().unwrap_or(Whereabouts::Gone);
        let dns = seen.dns.get(&id).map(String::as_str);
        // Steps write records, and Parameter Store throttles writes early (3 a second in the
        // emulator's model): a step refused as throttled is taken again after a pause (every step
        // may be taken again: the pass is level-triggered), which paces a wave of exits instead
        // of failing them all.
        let mut attempt = 0;
        let outcome = loop {
            let step = step_one(
                ctx,
                cluster,
                (&id, dns),
                &mut r,
                at,
                dr,
                candidates,
                request_id,
                bound,
            )
            .await;
            match step {
                Err(err) if err.is_throttling() && attempt < STEP_ATTEMPTS => {
                    let pause = pause_before(attempt, salt_of(id.as_str()) ^ u64::from(attempt));
                    if bound.is_near(pause + Duration::from_secs(5)) || !bound.sleep(pause).await {
                        break Err(err);
                    }
                    attempt += 1;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(true) => watch += 1,
            Ok(false) => {}
            Err(err) => {
                warn!(cluster = %cluster, instance = %id, error = %err, "exit step failed; next pass");
                watch += 1;
            }
        }
    }
    Ok(watch)
}

/// How many times one pass takes a throttled step again.
const STEP_ATTEMPTS: u32 = 4;

/// Decides and takes one record's next step; `Ok(true)` when it wants another pass soon.
#[allow(clippy::too_many_arguments)]
async fn step_one(
    ctx: &Context,
    cluster: &ClusterName,
    (id, private_dns): (&InstanceId, Option<&str>),
    r: &mut ExitRecord,
    at: Whereabouts,
    drains: &mut HashMap<InstanceId, DrainRecord>,
    candidates: &[InstanceId],
    request_id: &str,
    bound: &Deadline,
) -> Result<bool, AwsCallError> {
    // A drain of this exit that ended: read its result first.
    let mut draining = false;
    if let Some(d) = drains.get(id).filter(|d| d.left_node.is_none()).cloned() {
        match drain::status(ctx, &d).await.0 {
            DrainStatus::Finished { result } => {
                info!(cluster = %cluster, instance = %id, result = %result, "exit drain ended");
                drain::forget(ctx, cluster, id).await?;
                drains.remove(id);
                r.drained = true;
                record::write(ctx, cluster, id, r).await?;
            }
            DrainStatus::Running { .. } => draining = true,
            // Intended or undelivered: sent again below.
            _ => {}
        }
    }
    let facts = ExitFacts {
        record: r,
        at,
        now_ms: now_ms(),
        draining,
    };
    let step = next_step(&facts, &ctx.config.exits);
    let node = r.node.clone();
    let target = node::Target {
        instance: id,
        node: node.as_deref(),
        private_dns,
    };
    match step {
        Step::Cordon => {
            let Some(out) =
                node::run(ctx, cluster, candidates, target, NodeOp::Cordon, bound).await
            else {
                return Ok(true);
            };
            if out.settled() {
                r.cordoned = true;
                r.node = out.node.or(node);
                record::write(ctx, cluster, id, r).await?;
                info!(cluster = %cluster, instance = %id, door = r.door.as_str(), result = %out.result, "Node of a leaving worker cordoned");
            } else {
                warn!(cluster = %cluster, instance = %id, result = %out.result, "could not cordon the Node; next pass");
            }
            Ok(true)
        }
        Step::Drain { budget } => {
            let busy = drain::in_flight_per_control_plane(drains, &Default::default());
            let previous = drains.get(id).filter(|d| d.left_node.is_none()).cloned();
            let how = Budget {
                timeout: budget,
                keep_node: true,
            };
            let started = drain::start_with(
                ctx,
                cluster,
                (id, node.as_deref()),
                candidates,
                &busy,
                previous.as_ref(),
                request_id,
                how,
            )
            .await?;
            if let Started::Sent(d) | Started::NotSent(d) = started {
                info!(cluster = %cluster, instance = %id, door = r.door.as_str(), budget_seconds = budget.as_secs(), sent = !d.command_id.is_empty(), "exit drain started");
                drains.insert(id.clone(), d);
            }
            Ok(true)
        }
        Step::SetUnhealthy => {
            ctx.asg.set_unhealthy(id).await?;
            r.replaced = true;
            record::write(ctx, cluster, id, r).await?;
            info!(cluster = %cluster, instance = %id, "worker with scheduled maintenance marked unhealthy: its group replaces it");
            Ok(false)
        }
        Step::DeleteNode => {
            let done = node::run(ctx, cluster, candidates, target, NodeOp::Delete, bound)
                .await
                .is_some_and(|o| o.settled());
            if !done {
                return Ok(true);
            }
            if drains.remove(id).is_some() {
                drain::forget(ctx, cluster, id).await?;
            }
            record::forget(ctx, cluster, id).await?;
            info!(cluster = %cluster, instance = %id, door = r.door.as_str(), "Node of a worker gone without a hook deleted");
            Ok(false)
        }
        Step::Uncordon => {
            let done = node::run(ctx, cluster, candidates, target, NodeOp::Uncordon, bound)
                .await
                .is_some_and(|o| o.settled());
            if done {
                record::forget(ctx, cluster, id).await?;
                info!(cluster = %cluster, instance = %id, door = r.door.as_str(), "worker back in service: Node uncordoned");
            }
            Ok(!done)
        }
        Step::Forget => {
            record::forget(ctx, cluster, id).await?;
            Ok(false)
        }
        Step::Wait { watch } => Ok(watch),
    }
}
