//! No lease held by two invocations at once: each holder's time with a lease, from the journal
//! of lease writes, and the check that no two intersect.

use std::collections::{BTreeSet, HashMap};

use joinkeeper::lease::now_ms;

use super::{Monitor, Violation};
use crate::journal::{Journal, LeaseOp, LeaseWrite, Shared};

/// One holder's time with a lease, as its invocation believed it: from the answer to its first
/// write that took effect until it sent the release, was killed or returned, or the latest
/// expiry it wrote successfully passed (the guard before the expiry is not subtracted, so an
/// overlap found here is one for any guard).
#[derive(Clone, Debug)]
pub struct Holding {
    pub name: String,
    pub holder: String,
    pub invocation: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub end_reason: &'static str,
}

pub fn holdings(j: &Journal, now: i64) -> Vec<Holding> {
    let ends: HashMap<&str, i64> = j
        .invocations
        .iter()
        .filter_map(|r| Some((r.id.as_str(), r.end_ms?)))
        .collect();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for w in &j.lease {
        if w.op == LeaseOp::Delete || w.holder.is_empty() {
            continue;
        }
        if !seen.insert((w.name.clone(), w.holder.clone())) {
            continue;
        }
        let mine: Vec<&LeaseWrite> = j
            .lease
            .iter()
            .filter(|x| x.name == w.name && x.holder == w.holder && x.op != LeaseOp::Delete)
            .collect();
        let Some(start) = mine
            .iter()
            .filter_map(|x| match x.answered {
                Some((t, true)) => Some(t),
                _ => None,
            })
            .min()
        else {
            continue;
        };
        let expiry = mine
            .iter()
            .filter(|x| matches!(x.answered, Some((_, true))))
            .map(|x| x.expires_at_ms)
            .max()
            .unwrap_or(start);
        let mut end = (expiry, "expiry written");
        if let Some(d) = j
            .lease
            .iter()
            .filter(|x| {
                x.op == LeaseOp::Delete
                    && x.name == w.name
                    && x.invocation == w.invocation
                    && x.sent_ms >= start
            })
            .map(|x| x.sent_ms)
            .min()
        {
            if d < end.0 {
                end = (d, "release sent");
            }
        }
        let inv_end = ends.get(w.invocation.as_str()).copied().unwrap_or(now);
        if inv_end < end.0 {
            end = (inv_end, "invocation ended");
        }
        out.push(Holding {
            name: w.name.clone(),
            holder: w.holder.clone(),
            invocation: w.invocation.clone(),
            start_ms: start,
            end_ms: end.0,
            end_reason: end.1,
        });
    }
    out
}

impl Monitor {
    pub fn check_leases(&mut self, journal: &Shared) {
        let hs = {
            let j = journal.lock().expect("journal");
            holdings(&j, now_ms())
        };
        for (k, a) in hs.iter().enumerate() {
            for b in hs.iter().skip(k + 1) {
                if a.name != b.name || a.holder == b.holder {
                    continue;
                }
                if a.start_ms < b.end_ms && b.start_ms < a.end_ms {
                    let (first, second) = if a.start_ms <= b.start_ms {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    self.violate(
                        format!("lease {} {} {}", a.name, a.holder, b.holder),
                        Violation {
                            invariant: "lease held twice",
                            instance: first.name.clone(),
                            at_ms: second.start_ms,
                            evidence: format!(
                                "{} held by {} ({}) from {} to {} ({}), and by {} ({}) from {} to {} ({})",
                                first.name,
                                first.invocation,
                                first.holder,
                                self.rel(first.start_ms),
                                self.rel(first.end_ms),
                                first.end_reason,
                                second.invocation,
                                second.holder,
                                self.rel(second.start_ms),
                                self.rel(second.end_ms),
                                second.end_reason
                            ),
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::InvocationRecord;

    fn write(
        inv: &str,
        op: LeaseOp,
        holder: &str,
        expires: i64,
        sent: i64,
        ok: bool,
    ) -> LeaseWrite {
        LeaseWrite {
            invocation: inv.into(),
            name: "/joinkeeper/c/leases/reconcile".into(),
            op,
            holder: holder.into(),
            expires_at_ms: expires,
            sent_ms: sent,
            answered: Some((sent + 10, ok)),
        }
    }

    fn overlaps(j: &Journal) -> usize {
        let hs = holdings(j, 100_000);
        let mut n = 0;
        for (k, a) in hs.iter().enumerate() {
            for b in hs.iter().skip(k + 1) {
                if a.name == b.name && a.start_ms < b.end_ms && b.start_ms < a.end_ms {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn a_release_then_a_create_and_an_expiry_then_a_takeover_are_not_overlaps() {
        let j = Journal {
            lease: vec![
                write("a", LeaseOp::Create, "h1", 5_000, 1_000, true),
                write("a", LeaseOp::Delete, "", 0, 2_000, true),
                write("b", LeaseOp::Create, "h2", 9_000, 2_100, true),
                // b is killed at 3 s; c takes over once h2's expiry has passed.
                write("c", LeaseOp::Overwrite, "h3", 20_000, 9_000, true),
                // A create whose answer said it failed holds nothing.
                write("d", LeaseOp::Create, "h4", 30_000, 9_500, false),
            ],
            invocations: vec![InvocationRecord {
                id: "b".into(),
                end_ms: Some(3_000),
                ..Default::default()
            }],
        };
        assert_eq!(overlaps(&j), 0, "{:?}", holdings(&j, 100_000));
    }

    #[test]
    fn a_late_renewal_after_a_takeover_is_an_overlap() {
        let j = Journal {
            lease: vec![
                write("a", LeaseOp::Create, "h1", 5_000, 1_000, true),
                write("b", LeaseOp::Overwrite, "h2", 20_000, 5_100, true),
                // a's renewal, sent before its expiry, answered after b took over.
                LeaseWrite {
                    answered: Some((6_000, true)),
                    ..write("a", LeaseOp::Overwrite, "h1", 15_000, 4_000, true)
                },
            ],
            invocations: Vec::new(),
        };
        assert_eq!(overlaps(&j), 1, "{:?}", holdings(&j, 100_000));
    }
}
