//! Taking over an expired lease: one waiter per expired version wins a create-only marker; a
//! marker whose winner never took the lease goes stale and the next generation is tried.

use serde::{Deserialize, Serialize};

use super::{now_ms, sanitize, LeaseValue, Leases};
use crate::aws::AwsCallError;
use std::time::Duration;

/// A takeover marker: who won it, and when.
#[derive(Serialize, Deserialize)]
struct Marker {
    holder: String,
    at_ms: i64,
}

/// A takeover marker whose winner has not taken the lease by now never will (its takeover is
/// bounded by [`WRITE_BOUND`](super::WRITE_BOUND)): the next generation may be tried.
pub const MARKER_STALE: Duration = Duration::from_secs(8 * 2 + 12);
/// How many marker generations one takeover tries.
const MARKER_GENERATIONS: u32 = 4;

impl Leases {
    /// Creates the takeover marker of the expired lease at `version` (create-only: one winner).
    /// A marker whose winner never took the lease (it died, or its overwrite failed) is stale
    /// after [`MARKER_STALE`]; the next generation's marker (`….1`, `….2`, …) is then tried, so
    /// one failed winner cannot block the lease until the cleanup. True when this caller won.
    pub(super) async fn win_takeover(
        &self,
        name: &str,
        found: Option<&LeaseValue>,
        version: i64,
        holder: &str,
    ) -> Result<bool, AwsCallError> {
        let old = found.map(|v| v.holder.as_str()).unwrap_or("corrupt");
        let base = format!("{name}.takeover.{}-v{version}", sanitize(old));
        for generation in 0..MARKER_GENERATIONS {
            let marker = if generation == 0 {
                base.clone()
            } else {
                format!("{base}.{generation}")
            };
            let mine = Marker {
                holder: holder.to_owned(),
                at_ms: now_ms(),
            };
            self.pause("marker").await;
            if self
                .store
                .create_only(&marker, &serde_json::to_string(&mine).unwrap_or_default())
                .await?
            {
                return Ok(true);
            }
            let Some((text, _)) = self.store.get(&marker, false).await? else {
                continue;
            };
            let theirs = serde_json::from_str::<Marker>(&text).unwrap_or(Marker {
                holder: text.clone(),
                at_ms: 0,
            });
            if theirs.holder == holder {
                return Ok(true); // our own create, whose answer was lost
            }
            let stale =
                theirs.at_ms > 0 && now_ms() - theirs.at_ms > MARKER_STALE.as_millis() as i64;
            if !stale {
                return Ok(false);
            }
        }
        Ok(false)
    }
}
