//! When a launch's wait began, from the group's scaling activities. EC2's `LaunchTime` is the
//! time of the instance's last start: an instance leaving a **Running** warm pool keeps the one
//! from its first launch, so it cannot time a join deadline. The activity that took the instance
//! into service ("Launching a new EC2 instance: i-…", or "… from warm pool: i-…") says when its
//! wait began.

use aws_sdk_autoscaling::types::Activity;

use super::autoscaling::AutoScaling;
use super::AwsCallError;
use crate::names::{GroupName, InstanceId};

/// Activities read per lookup (newest first): the launch of an instance that waits now is among
/// the group's most recent ones.
const ACTIVITY_PAGES: usize = 2;

/// Pure: the start of the newest launch activity naming `instance`.
pub fn launch_start(
    activities: &[(String, Option<time::OffsetDateTime>)],
    instance: &InstanceId,
) -> Option<time::OffsetDateTime> {
    activities
        .iter()
        .filter(|(description, _)| {
            description.starts_with("Launching")
                && description
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .any(|w| w == instance.as_str())
        })
        .filter_map(|(_, start)| *start)
        .max()
}

fn plain(a: &Activity) -> (String, Option<time::OffsetDateTime>) {
    (
        a.description().unwrap_or_default().to_owned(),
        a.start_time()
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
    )
}

impl AutoScaling {
    /// When the wait of `instance`'s current launch began: `Ok(None)` when no recent activity
    /// names it (its `LaunchTime` then stands).
    pub async fn wait_began(
        &self,
        group: &GroupName,
        instance: &InstanceId,
    ) -> Result<Option<time::OffsetDateTime>, AwsCallError> {
        let mut pages = self
            .client
            .describe_scaling_activities()
            .auto_scaling_group_name(group.as_str())
            .max_records(100)
            .into_paginator()
            .send();
        let mut seen = Vec::new();
        for _ in 0..ACTIVITY_PAGES {
            let Some(page) = pages.next().await else {
                break;
            };
            let page = page.map_err(|e| {
                AwsCallError::new(
                    "autoscaling:DescribeScalingActivities",
                    &e.into_service_error(),
                )
            })?;
            seen.extend(page.activities().iter().map(plain));
            if let Some(t) = launch_start(&seen, instance) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_newest_launch_activity_of_the_instance() {
        let i = InstanceId::parse("i-0123456789abcdef0").expect("id");
        let t1 = datetime!(2026-12-01 10:00 UTC);
        let t2 = datetime!(2026-12-04 10:00 UTC);
        let acts = vec![
            (
                "Launching a new EC2 instance from warm pool: i-0123456789abcdef0".to_owned(),
                Some(t2),
            ),
            (
                "Terminating EC2 instance: i-0123456789abcdef0".to_owned(),
                Some(datetime!(2026-12-05 10:00 UTC)),
            ),
            (
                "Launching a new EC2 instance: i-0123456789abcdef0".to_owned(),
                Some(t1),
            ),
            (
                "Launching a new EC2 instance: i-0123456789abcdef01".to_owned(),
                Some(datetime!(2026-12-06 10:00 UTC)),
            ),
        ];
        assert_eq!(launch_start(&acts, &i), Some(t2));
        let other = InstanceId::parse("i-0000000a").expect("id");
        assert_eq!(launch_start(&acts, &other), None);
    }
}
