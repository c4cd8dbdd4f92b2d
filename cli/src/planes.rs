//! The control planes of a cluster as `joinkeeper status` and `joinkeeper rotate` see them: the
//! genuine ones (the cluster's control-plane instance profile) with their reachability, and the
//! impostors (tagged as control planes without it), which are shown and never asked anything.

use std::io::{self, Write};

use serde::Serialize;

use joinkeeper::identity::Impostor;
use joinkeeper::names::ClusterName;
use joinkeeper::Context;

use crate::CliError;

#[derive(Clone, Debug, Serialize)]
pub struct ControlPlane {
    pub instance: String,
    /// EC2 state: pending, running, stopping, stopped.
    pub state: String,
    /// The SSM agent's ping status is Online.
    pub ssm_online: bool,
    pub reachable: bool,
}

/// A cluster's tagged control-plane instances, sorted by identity.
#[derive(Clone, Debug, Default)]
pub struct Planes {
    pub genuine: Vec<ControlPlane>,
    pub impostors: Vec<Impostor>,
}

/// Every instance tagged as a control plane of the cluster that is not terminated: the genuine
/// ones with their reachability, and the impostors.
pub async fn control_planes(ctx: &Context, cluster: &ClusterName) -> Result<Planes, CliError> {
    let identified = ctx
        .control_planes(cluster, &["pending", "running", "stopping", "stopped"])
        .await?;
    let ids = identified.ids();
    let mut found: Vec<(String, String)> = identified
        .genuine
        .into_iter()
        .map(|c| (c.id.to_string(), c.state))
        .collect();
    found.sort();
    let online = if ids.is_empty() {
        Default::default()
    } else {
        ctx.fleet.online_instances(&ids).await?
    };
    let genuine = found
        .into_iter()
        .map(|(instance, state)| {
            let ssm_online = online.contains(&instance);
            ControlPlane {
                reachable: ssm_online && state == "running",
                instance,
                state,
                ssm_online,
            }
        })
        .collect();
    Ok(Planes {
        genuine,
        impostors: identified.impostors,
    })
}

/// The impostor rows of a cluster's status (nothing when there is none).
pub fn render_impostors(
    impostors: &[Impostor],
    cluster: &str,
    row: &dyn Fn(&mut dyn Write, &str, &str) -> io::Result<()>,
    out: &mut dyn Write,
) -> io::Result<()> {
    for (i, imp) in impostors.iter().enumerate() {
        let label = if i == 0 { "IMPOSTORS" } else { "" };
        row(
            out,
            label,
            &format!(
                "{}  instance profile {} is not joinkeeper-control-plane-{cluster} (or a configured one): sent nothing, not believed",
                imp.instance, imp.profile
            ),
        )?;
    }
    Ok(())
}
