//! Reads the whole state a reconcile pass decides on: the cluster's worker groups, joinkeeper's
//! hooks on them, and every instance waiting in a lifecycle state joinkeeper acts on (in the
//! group and in its warm pool).

use std::collections::HashMap;

use crate::aws::autoscaling::Hook;
use crate::aws::AwsCallError;
use crate::context::Context;
use crate::lifecycle::{Transition, WaitState};
use crate::names::{ClusterName, GroupName, InstanceId};

/// joinkeeper's hooks on one group (other tools' hooks are never listed).
#[derive(Clone, Debug, Default)]
pub struct GroupHooks {
    pub launch: Option<Hook>,
    pub terminate: Option<Hook>,
}

impl GroupHooks {
    pub fn from_hooks(hooks: Vec<Hook>) -> Self {
        let mut g = GroupHooks::default();
        for h in hooks {
            match h.transition {
                Transition::Launching if g.launch.is_none() => g.launch = Some(h),
                Transition::Terminating if g.terminate.is_none() => g.terminate = Some(h),
                _ => {}
            }
        }
        g
    }

    /// The hooks that may hold an instance in `state`, most likely first.
    pub fn for_state(&self, state: WaitState) -> Vec<&Hook> {
        let (first, second) = match state {
            WaitState::PendingWait => (&self.launch, &None),
            WaitState::TerminatingWait | WaitState::WarmedTerminatingWait => {
                (&self.terminate, &None)
            }
            WaitState::WarmedPendingWait => (&self.launch, &self.terminate),
        };
        first.iter().chain(second.iter()).collect()
    }
}

/// One instance waiting for joinkeeper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub group: GroupName,
    pub instance: InstanceId,
    pub state: WaitState,
}

/// The cluster as one pass sees it.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub waiting: Vec<Waiting>,
    pub hooks: HashMap<GroupName, GroupHooks>,
}

/// Reads the view. Hooks are read once per run (`known_hooks` caches them); groups and warm
/// pools on every pass.
pub async fn gather(
    ctx: &Context,
    cluster: &ClusterName,
    known_hooks: &mut HashMap<GroupName, GroupHooks>,
) -> Result<ClusterView, AwsCallError> {
    let mut view = ClusterView::default();
    for group in ctx.asg.managed_groups(cluster).await? {
        if !group.is_worker_group {
            continue;
        }
        let mut states = group.instances.clone();
        if group.has_warm_pool {
            states.extend(ctx.asg.warm_pool(&group.name).await?);
        }
        let waiting: Vec<Waiting> = states
            .iter()
            .filter_map(|(id, s)| {
                Some(Waiting {
                    group: group.name.clone(),
                    instance: id.clone(),
                    state: WaitState::from_aws(s)?,
                })
            })
            .collect();
        if waiting.is_empty() {
            continue;
        }
        if !known_hooks.contains_key(&group.name) {
            let hooks = ctx.asg.hooks(&group.name, &ctx.config.hook_prefix).await?;
            known_hooks.insert(group.name.clone(), GroupHooks::from_hooks(hooks));
        }
        let hooks = known_hooks.get(&group.name).cloned().unwrap_or_default();
        // An instance held only by other tools' hooks is not joinkeeper's to complete.
        view.waiting.extend(
            waiting
                .into_iter()
                .filter(|w| !hooks.for_state(w.state).is_empty()),
        );
        view.hooks.insert(group.name.clone(), hooks);
    }
    Ok(view)
}

/// Whether anything of the cluster waits for joinkeeper (the hand-off's last look).
pub async fn any_waiting(ctx: &Context, cluster: &ClusterName) -> Result<bool, AwsCallError> {
    let mut hooks = HashMap::new();
    Ok(!gather(ctx, cluster, &mut hooks).await?.waiting.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::HookName;
    use std::time::Duration;

    fn hook(name: &str, transition: Transition) -> Hook {
        Hook {
            name: HookName::parse(name).expect("name"),
            transition,
            heartbeat_timeout: Duration::from_secs(300),
        }
    }

    #[test]
    fn hooks_per_state() {
        let g = GroupHooks::from_hooks(vec![
            hook("joinkeeper-launch", Transition::Launching),
            hook("joinkeeper-terminate", Transition::Terminating),
        ]);
        let names = |s| {
            g.for_state(s)
                .iter()
                .map(|h| h.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(WaitState::PendingWait), ["joinkeeper-launch"]);
        assert_eq!(names(WaitState::TerminatingWait), ["joinkeeper-terminate"]);
        assert_eq!(
            names(WaitState::WarmedPendingWait),
            ["joinkeeper-launch", "joinkeeper-terminate"]
        );
        let launch_only =
            GroupHooks::from_hooks(vec![hook("joinkeeper-launch", Transition::Launching)]);
        assert!(launch_only.for_state(WaitState::TerminatingWait).is_empty());
    }
}
