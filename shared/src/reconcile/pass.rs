//! One reconcile pass: read the whole cluster, ask a control plane once about every instance
//! that needs a Node state, decide each action with the pure functions, act. One failing action
//! is reported and the others are still served.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use crate::aws::AwsCallError;
use crate::context::{Context, Invocation};
use crate::deadline::Deadline;
use crate::lifecycle::NodeState;
use crate::lifecycle::WaitState;
use crate::names::{ClusterName, InstanceId};
use crate::reconcile::gather::{gather, Waiting};
use crate::reconcile::memory::Memory;
use crate::reconcile::plan::{self, Route};
use crate::reconcile::report::{ActionOutcome, ActionReport};
use crate::reconcile::tokens::{self, JoinMode, TokenPlan};
use crate::reconcile::{cleanup, drain, launch, node_status, terminate, warm_entry};

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassResult {
    pub reports: Vec<ActionReport>,
    /// Actions (and Nodes left to delete) still waiting after this pass.
    pub pending: usize,
    /// The lifecycle actions among them.
    pub still_waiting: Vec<Waiting>,
}

pub async fn run_pass(
    ctx: &Context,
    cluster: &ClusterName,
    inv: &Invocation,
    mem: &mut Memory,
    bound: &Deadline,
) -> Result<PassResult, AwsCallError> {
    mem.join_logs = 0;
    mem.warm_logs.clear();
    let view = gather(ctx, cluster, &mut mem.hooks).await?;
    let waiting: Vec<Waiting> = view
        .waiting
        .into_iter()
        .filter(|w| !mem.done.contains(&(w.instance.clone(), w.state)))
        .collect();
    for w in &waiting {
        mem.see(&w.instance, w.state);
    }
    // Workers leaving by doors without a hook (records of exit events, and what the schedule
    // sees by itself). With lifecycle actions waiting, taken after the Ready ones are completed:
    // an exit's Node commands (a control plane's agent offline, say) must not hold them back.
    let mut exits = None;
    if waiting.is_empty() {
        exits = Some(crate::exits::pass::run_in_pass(ctx, cluster, inv, mem, bound).await);
    }
    let still_waiting: HashSet<InstanceId> = waiting.iter().map(|w| w.instance.clone()).collect();
    let scheduled = inv.trigger == crate::context::Trigger::Schedule;
    if waiting.is_empty() && plan::needs_drains(&waiting, mem.drains.is_some(), scheduled) {
        mem.drains = Some(drain::load_all(ctx, cluster).await?);
    }
    if scheduled && !mem.tokens_swept {
        mem.tokens_swept = true;
        let joining = waiting
            .iter()
            .filter(|w| w.state == WaitState::PendingWait)
            .map(|w| w.instance.clone())
            .collect();
        sweep_tokens(ctx, cluster, mem, &joining).await;
    }
    let recorded = mem.drains.as_ref().is_some_and(|d| !d.is_empty());
    if waiting.is_empty() && !recorded && mem.revoke.is_empty() {
        return Ok(PassResult {
            pending: exits.unwrap_or_default(),
            ..Default::default()
        });
    }
    let per_instance = join_mode(ctx, cluster, mem).await == Some(JoinMode::PerInstance);
    // Workers about to join must find a record that outlives their join deadline. Checked
    // while the control plane is asked about the Nodes, not before: a slow check (throttled
    // reads, a regenerate) must not hold back the CONTINUE of Nodes already Ready.
    // Per-instance workers never read the shared record: no need to keep it fresh for them.
    let record_check = !per_instance && plan::needs_record_check(&waiting, mem.record_check_due());
    let sub = Invocation::new(inv.request_id.clone(), *bound);
    let check_record = async {
        if !record_check {
            return;
        }
        if let Err(err) =
            crate::regenerate::ensure_fresh(ctx, cluster, ctx.config.join_deadline, &sub).await
        {
            warn!(cluster = %cluster, error = %err, "could not make sure the join record outlives the join deadline");
        }
    };
    let unknown: Vec<InstanceId> = waiting
        .iter()
        .map(|w| &w.instance)
        .filter(|i| !mem.facts.contains_key(*i))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        mem.facts.extend(ctx.fleet.instances(&unknown).await?);
    }
    if plan::needs_drains(&waiting, mem.drains.is_some(), scheduled) {
        mem.drains = Some(drain::load_all(ctx, cluster).await?);
    }
    let drains = mem.drains.clone().unwrap_or_default();
    let need_node = plan::needs_node(&waiting, &drains);
    let candidates = match &mem.candidates {
        Some(c) if !c.is_empty() => c.clone(),
        _ => ctx.control_plane_candidates(cluster).await?,
    };
    let token_plan = per_instance.then(|| TokenPlan {
        wanted: tokens::wanted(&waiting, &mem.facts),
        revoke: mem.revoke.clone(),
    });
    // Revocations alone still need a command: it asks about the revoked instances.
    let asked: Vec<InstanceId> = match &token_plan {
        Some(p) if need_node.is_empty() => p.revoke.iter().cloned().collect(),
        _ => need_node,
    };
    let hosts: HashMap<InstanceId, _> = asked
        .iter()
        .filter_map(|i| Some((i.clone(), mem.facts.get(i)?.host_keys())))
        .collect();
    let ask_nodes = async {
        if asked.is_empty() {
            (Some((HashMap::new(), Default::default())), Vec::new())
        } else {
            let plan = token_plan.as_ref();
            node_status::node_states(ctx, cluster, &candidates, &asked, &hosts, plan, bound).await
        }
    };
    let ((answers, passed_over), ()) = tokio::join!(ask_nodes, check_record);
    if record_check {
        mem.record_checked = Some(Instant::now());
    }
    if let Some((_, report)) = answers.as_ref().filter(|_| per_instance) {
        tokens::settle(ctx, cluster, &mut mem.revoke, report, &still_waiting);
    }
    // The Node each instance owns: the one a drain names (never one the script looks up).
    let states = answers.map(|(answers, _)| {
        let mut states = HashMap::new();
        for (id, (state, name)) in answers {
            match name {
                Some(name) => mem.node_names.insert(id.clone(), name),
                None => mem.node_names.remove(&id),
            };
            states.insert(id, state);
        }
        states
    });
    // Ask EC2 and SSM again next pass when no control plane answered; otherwise the ones passed
    // over (an agent offline or busy) are asked last, so each pass does not wait on them first.
    let candidates = plan::answering_first(&candidates, &passed_over);
    mem.candidates = states.as_ref().map(|_| candidates.clone());
    // Ready Nodes, the bulk of a burst: complete them concurrently, not one by one.
    let node_of = |w: &Waiting| states.as_ref().and_then(|s| s.get(&w.instance).copied());
    let (ready, waiting): (Vec<Waiting>, Vec<Waiting>) = waiting.into_iter().partition(|w| {
        plan::route(w.state, node_of(w), plan::draining(&drains, &w.instance)) == Route::Ready
    });
    let mut result = PassResult::default();
    // The completions may use the room the pass keeps after its waits (ACT_ROOM).
    let act_bound = inv.deadline.within(bound.remaining() + ACT_ROOM);
    for (w, report) in launch::continue_ready(ctx, mem, cluster.as_str(), &ready, &act_bound).await
    {
        settle(ctx, &mut result, mem, inv, cluster, &w, report);
    }
    result.pending += match exits {
        Some(n) => n,
        None => crate::exits::pass::run_in_pass(ctx, cluster, inv, mem, bound).await,
    };
    cordon_leaving(ctx, mem, cluster, &waiting, &node_of, &candidates, bound).await;
    let entering: Vec<&Waiting> = waiting
        .iter()
        .filter(|w| {
            let route = plan::route(w.state, node_of(w), plan::draining(&drains, &w.instance));
            matches!(route, Route::EnterWarmPool | Route::EnterWarmPoolUnknown)
        })
        .collect();
    if !entering.is_empty() {
        warm_entry::prefetch_join_logs(ctx, mem, cluster.as_str(), &entering, bound).await;
    }
    for w in &waiting {
        let node = node_of(w);
        let report = act_on(ctx, mem, cluster, w, node, &candidates, inv, bound).await;
        settle(ctx, &mut result, mem, inv, cluster, w, report);
    }
    // Nodes recorded for instances that are gone (left by completed actions, or of drains whose
    // instance went away without its action): deleted; the run stays while a left Node's
    // instance lives (it terminates within a minute or two of its completion).
    if let Some(records) = mem.drains.as_mut() {
        match cleanup::delete_nodes_of_gone(
            ctx,
            cluster,
            records,
            &still_waiting,
            &candidates,
            bound,
        )
        .await
        {
            Ok(n) => result.pending += n,
            Err(err) => {
                warn!(cluster = %cluster, error = %err, "could not delete the Nodes of terminated instances; next pass");
                result.pending += 1;
            }
        }
    }
    // Tokens of ended waits are revoked by the next pass: the run stays for it.
    result.pending += usize::from(!mem.revoke.is_empty());
    Ok(result)
}

/// The cluster's join mode, read once per run (an unreadable mode is asked again next pass).
async fn join_mode(ctx: &Context, cluster: &ClusterName, mem: &mut Memory) -> Option<JoinMode> {
    if mem.join_mode.is_none() {
        mem.join_mode = tokens::read_mode(ctx, cluster).await;
    }
    mem.join_mode
}

/// On a schedule, a per-instance cluster's records of instances no longer waiting (left by a run
/// that ended before revoking them) are revoked by this run: no token outlives its wait by more
/// than a schedule, even when no worker waits.
async fn sweep_tokens(
    ctx: &Context,
    cluster: &ClusterName,
    mem: &mut Memory,
    waiting: &HashSet<InstanceId>,
) {
    if join_mode(ctx, cluster, mem).await == Some(JoinMode::PerInstance) {
        let leftover = tokens::sweep(ctx, cluster, waiting).await;
        if !leftover.is_empty() {
            tracing::info!(cluster = %cluster, records = leftover.len(), "per-instance records of instances no longer waiting: revoking them");
            mem.revoke.extend(leftover);
        }
    }
}

/// Several Nodes leaving at once: all cordoned by one command before this pass starts drains.
async fn cordon_leaving(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &ClusterName,
    waiting: &[Waiting],
    node_of: &(dyn Fn(&Waiting) -> Option<NodeState> + Sync),
    candidates: &[InstanceId],
    bound: &Deadline,
) {
    let leaving: Vec<drain::cordon::Leaving> = waiting
        .iter()
        .map(|w| drain::cordon::Leaving {
            instance: w.instance.clone(),
            state: w.state,
            node: node_of(w),
        })
        .collect();
    let drains = mem.drains.clone().unwrap_or_default();
    let names = drain::cordon::to_cordon(&leaving, &drains, &mem.node_names, &mem.cordoned);
    if !names.is_empty() {
        let done = drain::cordon::cordon_all(ctx, cluster, candidates, &names, bound).await;
        mem.cordoned.extend(done);
    }
}

/// Records one action's outcome in the pass result (and the run's memory), logs it and records
/// its metrics.
fn settle(
    ctx: &Context,
    result: &mut PassResult,
    mem: &mut Memory,
    inv: &Invocation,
    cluster: &ClusterName,
    w: &Waiting,
    report: Result<ActionReport, AwsCallError>,
) {
    let mut report = report.unwrap_or_else(|err| {
        warn!(cluster = %cluster, instance = %w.instance, error = %err, "handling this lifecycle action failed; the others go on");
        ActionReport::new(cluster.as_str(), &w.group, &w.instance, w.state, ActionOutcome::Failed, err.to_string())
    });
    if report.outcome.is_final() && report.outcome != ActionOutcome::Failed {
        mem.done.insert((w.instance.clone(), w.state));
        if w.state == WaitState::PendingWait && mem.join_mode == Some(JoinMode::PerInstance) {
            mem.revoke.insert(w.instance.clone()); // CONTINUE or ABANDON: its token goes
        }
    } else {
        result.pending += 1;
        result.still_waiting.push(w.clone());
    }
    report.by_schedule = inv.trigger == crate::context::Trigger::Schedule;
    ctx.metrics.record_all(crate::metrics::action(&report));
    result.reports.push(report.log());
}

#[allow(clippy::too_many_arguments)]
async fn act_on(
    ctx: &Context,
    mem: &mut Memory,
    cluster: &ClusterName,
    w: &Waiting,
    node: Option<NodeState>,
    candidates: &[InstanceId],
    inv: &Invocation,
    bound: &Deadline,
) -> Result<ActionReport, AwsCallError> {
    let hooks = mem
        .hooks
        .get(&w.group)
        .map(|h| {
            h.for_state(w.state)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let hooks: Vec<&_> = hooks.iter().collect();
    let draining = mem
        .drains
        .as_ref()
        .is_some_and(|d| plan::draining(d, &w.instance));
    let route = plan::route(w.state, node, draining);
    match route {
        Route::Ready | Route::Launch => {
            launch::launch(ctx, mem, cluster.as_str(), w, &hooks, node, bound).await
        }
        Route::EnterWarmPool | Route::EnterWarmPoolUnknown => {
            let node_known = route == Route::EnterWarmPool;
            warm_entry::enter_warm_pool(ctx, mem, cluster.as_str(), w, &hooks, node_known, bound)
                .await
        }
        Route::Leave => {
            terminate::terminate(
                ctx,
                mem,
                cluster,
                w,
                &hooks,
                node,
                candidates,
                &inv.request_id,
            )
            .await
        }
    }
}

/// Time a pass keeps, between its longest wait and the end of its lease, for what it decided from
/// that wait (completions, drain records).
pub const ACT_ROOM: Duration = Duration::from_secs(10);

/// The bound of a pass's waits: the invocation's deadline, and the lease's validity less
/// [`ACT_ROOM`] (the pass itself is cut when the lease's validity runs out).
pub fn pass_bound(inv: &Invocation, lease_left: Duration) -> Deadline {
    inv.deadline.within(lease_left.saturating_sub(ACT_ROOM))
}
