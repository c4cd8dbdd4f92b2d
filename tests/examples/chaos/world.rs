//! The world of a run: three clusters, their control planes and join records, one subnet each,
//! and the worker groups (one real boot and join from user data on every launch).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_autoscaling::types::{InstanceReusePolicy, WarmPoolState};
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use joinkeeper::aws::AwsClients;
use joinkeeper::names::ClusterName;
use joinkeeper::{deadline::Deadline, Context, Invocation};
use joinkeeper_tests::*;
use serde_json::json;

use crate::{config, GAMMA_RECORD_LIFE, HEARTBEAT, JOIN_DEADLINE};

pub struct GroupSpec {
    pub name: &'static str,
    pub cluster: &'static str,
    pub pool: Option<WarmPoolState>,
    pub tags: Vec<(&'static str, &'static str)>,
}

/// The groups, each of the cluster its name begins with.
fn groups() -> Vec<GroupSpec> {
    use WarmPoolState::{Running, Stopped};
    [
        ("alpha-w", None, ("emulator:drain-seconds", "8")),
        ("alpha-bad", None, ("emulator:join", "never-ready")),
        ("beta-w", Some(Stopped), ("emulator:drain-seconds", "3")),
        ("beta-bad", None, ("emulator:join", "fail")),
        ("gamma-w", Some(Running), ("emulator:stuck-pods", "1")),
    ]
    .into_iter()
    .map(|(name, pool, tag)| GroupSpec {
        name,
        cluster: name.split('-').next().unwrap_or_default(),
        pool,
        tags: vec![tag],
    })
    .collect()
}

pub const CLUSTERS: [&str; 3] = ["alpha", "beta", "gamma"];

async fn subnet_for(setup: &AwsClients, cidr: &str) -> String {
    let vpcs = setup
        .ec2
        .describe_vpcs()
        .send()
        .await
        .expect("describe vpcs");
    let vpc = vpcs
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .or_else(|| vpcs.vpcs().first())
        .and_then(|v| v.vpc_id())
        .expect("a VPC")
        .to_owned();
    setup
        .ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block(cidr)
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("subnet")
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_owned()
}

/// A worker group of `spec.cluster` (the harness's group with its launch and terminate hooks),
/// moved into `subnet`, whose launches run the real boot unit and join from user data.
async fn create_group(setup: &AwsClients, spec: &GroupSpec, subnet: &str) {
    create_worker_group(setup, spec.cluster, spec.name, HEARTBEAT, &spec.tags).await;
    let args = format!(
        "--cluster {} --prefix /joinkeeper --deadline-seconds {JOIN_DEADLINE}",
        spec.cluster
    );
    let user_data = format!(
        "#!/bin/bash\nset -euo pipefail\nexport JOINKEEPER_JOIN_TARGET_POLL_SECONDS=1 JOINKEEPER_JOIN_SERVICE_POLL_SECONDS=1\n/opt/joinkeeper/bin/joinkeeper-boot-unit {args}\n/opt/joinkeeper/bin/joinkeeper-join {args}\n"
    );
    // A launch template of its own (the emulator's moto cannot launch from a version added
    // later), and the group moved to it and into its subnet.
    let template = format!("{}-chaos", spec.name);
    let data = RequestLaunchTemplateData::builder()
        .image_id("ami-12c6146b")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
        .user_data(aws_smithy_types::base64::encode(user_data.as_bytes()));
    let made = setup
        .ec2
        .create_launch_template()
        .launch_template_name(&template);
    made.launch_template_data(data.build())
        .send()
        .await
        .expect("launch template");
    let spec_lt = aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .launch_template_name(template)
        .version("$Latest")
        .build();
    setup
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(spec.name)
        .launch_template(spec_lt)
        .vpc_zone_identifier(subnet)
        .send()
        .await
        .expect("group on its template, in its subnet");
    if let Some(state) = &spec.pool {
        setup
            .autoscaling
            .put_warm_pool()
            .auto_scaling_group_name(spec.name)
            .min_size(2)
            .max_group_prepared_capacity(2)
            .pool_state(state.clone())
            .instance_reuse_policy(
                InstanceReusePolicy::builder()
                    .reuse_on_scale_in(true)
                    .build(),
            )
            .send()
            .await
            .expect("warm pool");
    }
}

/// Who is who in a run's world, as set up before the functions run.
pub struct World {
    pub cluster_of_cp: HashMap<String, String>,
    /// The first control plane of each cluster (the one whose agent goes offline).
    pub first_cp: HashMap<&'static str, String>,
    pub subnets: Vec<(&'static str, String)>,
    pub specs: Vec<GroupSpec>,
    pub cluster_of_group: HashMap<String, String>,
}

impl World {
    /// Control planes, join records, subnets and groups, made with the set-up clients (no
    /// faults).
    pub async fn build(emulator: &Emulator, setup: &AwsClients) -> World {
        let mut cluster_of_cp = HashMap::new();
        let mut first_cp = HashMap::new();
        for c in CLUSTERS {
            let n = if c == "beta" { 3 } else { 1 };
            for k in 0..n {
                let id = launch_control_plane(emulator, setup, c, &[]).await;
                cluster_of_cp.insert(id.clone(), c.to_owned());
                if k == 0 {
                    first_cp.insert(c, id);
                }
            }
        }
        let setup_ctx = Context::new(config(), setup);
        for c in ["alpha", "beta"] {
            joinkeeper::regenerate::ensure_fresh(
                &setup_ctx,
                &ClusterName::parse(c).expect("name"),
                Duration::from_secs(3600),
                &Invocation::new("setup", Deadline::after(Duration::from_secs(120))),
            )
            .await
            .expect("record");
        }
        put_aged_record(setup, "gamma", "gam123", 86_400 - GAMMA_RECORD_LIFE - 20).await;

        let subnets = vec![
            ("alpha", subnet_for(setup, "172.31.200.0/26").await),
            ("beta", subnet_for(setup, "172.31.201.0/26").await),
            ("gamma", subnet_for(setup, "172.31.202.0/26").await),
        ];
        let specs = groups();
        let mut cluster_of_group = HashMap::new();
        for s in &specs {
            let subnet = &subnets
                .iter()
                .find(|(c, _)| *c == s.cluster)
                .expect("subnet")
                .1;
            create_group(setup, s, subnet).await;
            cluster_of_group.insert(s.name.to_owned(), s.cluster.to_owned());
        }
        World {
            cluster_of_cp,
            first_cp,
            subnets,
            specs,
            cluster_of_group,
        }
    }

    /// Auto Scaling's own upkeep: warm pools refilled, ABANDONed instances replaced.
    pub async fn upkeep(&self, emulator: &Emulator, setup: &AwsClients) {
        emulator.control_send("POST", "/_joinkeeper/warm-pools/maintain", &json!({}));
        for s in &self.specs {
            if let Ok(out) = setup
                .autoscaling
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(s.name)
                .send()
                .await
            {
                if let Some(d) = out
                    .auto_scaling_groups()
                    .first()
                    .and_then(|g| g.desired_capacity())
                {
                    set_capacity(setup, s.name, d).await;
                }
            }
        }
    }
}
