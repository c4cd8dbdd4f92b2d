//! How node-status questions are cut into commands, and how packed answers are read. The answer
//! is asked for packed (`Output=zfacts`: the facts zlib-compressed, then base64), some 40
//! characters an id instead of 150, so one command answers for about 500 ids; the parameters
//! then bind too: SSM counts them with the document's content against one 64 KB quota.

use std::collections::HashMap;

use super::{sent_dns, sent_ip, DOCUMENT_MAX_IDS, OUTPUT_LIMIT, SCRIPT_BUDGET, TYPICAL_BLOCK};
use crate::names::InstanceId;
use crate::nodes::matching::HostKeys;

/// The usual size of one id's block once packed: some 40 characters, measured on the usual
/// blocks; a margin for longer names.
pub const TYPICAL_PACKED_BLOCK: usize = 48;
/// SSM counts a command's runtime parameter values with its document's content against one
/// 64 KB quota ("The content of the document must not exceed 64KB. This quota also includes the
/// content specified for input parameters at runtime", the `CreateDocument` reference). The
/// node-status document takes some 4.5 KB; the rest, less a margin, is for parameters.
pub const PARAMETER_BUDGET: usize = 64 * 1024 - 8 * 1024;
/// Ids per command in join mode per-instance, as many as plain facts hold: its `token` and `csr`
/// lines are printed plain before the packed facts, within the same output limit.
pub const PER_INSTANCE_BATCH: usize = OUTPUT_LIMIT / TYPICAL_BLOCK;

/// How many ids one command may ask about with packed facts (shared join mode).
pub fn packed_batch_size() -> usize {
    (SCRIPT_BUDGET / TYPICAL_PACKED_BLOCK).min(DOCUMENT_MAX_IDS)
}

/// What one id adds to the command's parameters ([`super::parameters`]): its id, and its name
/// and address pairs when sent.
pub fn parameter_bytes(host: &HostKeys) -> usize {
    let id = host.id.as_str().len();
    let pair = |value: Option<&str>| value.map_or(0, |v| id + v.len() + 2);
    id + 1 + pair(sent_dns(host)) + pair(sent_ip(host))
}

/// The ids split into commands: in shared join mode as many as a packed answer usually holds and
/// the parameters' quota allows; in join mode per-instance [`PER_INSTANCE_BATCH`] at most. Either
/// way as few commands as the limits allow, the ids shared evenly among them (not 497 and 3).
pub fn batches(
    ids: &[InstanceId],
    hosts: &HashMap<InstanceId, HostKeys>,
    per_instance: bool,
) -> Vec<Vec<InstanceId>> {
    if per_instance {
        let even = ids
            .len()
            .div_ceil(ids.len().div_ceil(PER_INSTANCE_BATCH).max(1));
        return ids.chunks(even.max(1)).map(<[_]>::to_vec).collect();
    }
    let fewest = packed_batches(ids, hosts, packed_batch_size()).len().max(1);
    packed_batches(ids, hosts, ids.len().div_ceil(fewest))
}

/// Greedy: at most `most` ids a command, and parameters within [`PARAMETER_BUDGET`].
fn packed_batches(
    ids: &[InstanceId],
    hosts: &HashMap<InstanceId, HostKeys>,
    most: usize,
) -> Vec<Vec<InstanceId>> {
    let mut out: Vec<Vec<InstanceId>> = Vec::new();
    let mut bytes = 0;
    for id in ids {
        let cost = hosts.get(id).map_or(id.as_str().len() + 1, parameter_bytes);
        match out.last_mut() {
            Some(batch) if batch.len() < most && bytes + cost <= PARAMETER_BUDGET => {
                batch.push(id.clone());
                bytes += cost;
            }
            _ => {
                out.push(vec![id.clone()]);
                bytes = cost;
            }
        }
    }
    out
}

/// The facts an answer holds: a packed answer's `zfacts` line unpacked (an answer that cannot
/// be unpacked holds none: its ids are asked again), else the answer's own lines.
pub fn facts_text(output: &str) -> std::borrow::Cow<'_, str> {
    match output.lines().find_map(|l| l.strip_prefix("zfacts ")) {
        Some(packed) => unpack(packed.trim()).unwrap_or_default().into(),
        None => output.into(),
    }
}

/// The most a packed answer may unpack to: 600 ids, each with 4 Nodes of long names.
const UNPACKED_LIMIT: usize = 1 << 20;

fn unpack(packed: &str) -> Option<String> {
    let zlib = aws_smithy_types::base64::decode(packed).ok()?;
    let text =
        miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&zlib, UNPACKED_LIMIT).ok()?;
    String::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    use super::super::tests::host;
    use super::super::{parameters, parse_node_status};
    use super::*;

    fn zlib_base64(text: &str) -> String {
        // A stored (uncompressed) zlib stream: what any zlib writer may emit.
        let data = text.as_bytes();
        let mut z = vec![0x78, 0x01];
        for (n, block) in data.chunks(65_535).enumerate() {
            let last = (n + 1) * 65_535 >= data.len();
            z.push(u8::from(last));
            let len = block.len() as u16;
            z.extend(len.to_le_bytes());
            z.extend((!len).to_le_bytes());
            z.extend(block);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for byte in data {
            a = (a + u32::from(*byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        z.extend(((b << 16) | a).to_be_bytes());
        aws_smithy_types::base64::encode(z)
    }

    #[test]
    fn a_packed_answer_says_what_the_plain_one_says() {
        let a = host("i-0000000a", "ip-10-0-0-1.ec2.internal", "10.0.0.1");
        let b = host("i-0000000b", "ip-10-0-0-2.ec2.internal", "10.0.0.2");
        let facts = "node ip-10-0-0-1.ec2.internal aws:///us-east-1a/i-0000000a - Ready no 10.0.0.1 -\nid i-0000000a\nid i-0000000b\n";
        let asked = [a, b];
        let plain = parse_node_status(facts, &asked);
        assert_eq!(plain.len(), 2);
        // Per-instance token lines come plain before the packed line.
        let packed = format!(
            "token i-0000000a abcdef held\nzfacts {}\n",
            zlib_base64(facts)
        );
        assert_eq!(parse_node_status(&packed, &asked), plain);
        // Not base64, not zlib, or too large once unpacked: nothing answered (asked again).
        for bad in [
            "zfacts %%%".to_owned(),
            format!("zfacts {}", aws_smithy_types::base64::encode("not zlib")),
            format!("zfacts {}", zlib_base64(&"id i-0000000a\n".repeat(80_000))),
        ] {
            assert!(parse_node_status(&bad, &asked).is_empty(), "{bad:.40}");
        }
    }

    #[test]
    fn shared_mode_batches_fill_the_packed_answer_within_the_parameters_quota() {
        let ids: Vec<InstanceId> = (0..2_000)
            .map(|n| InstanceId::parse(&format!("i-0{n:016x}")).expect("id"))
            .collect();
        let usual: HashMap<InstanceId, HostKeys> = ids
            .iter()
            .enumerate()
            .map(|(n, i)| {
                let ip = format!("10.0.{}.{}", n / 250, n % 250 + 1);
                let dns = format!("ip-{}.ec2.internal", ip.replace('.', "-"));
                (i.clone(), host(i.as_str(), &dns, &ip))
            })
            .collect();
        let sizes = |hosts: &HashMap<InstanceId, HostKeys>, per_instance| {
            batches(&ids, hosts, per_instance)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(packed_batch_size(), 497);
        // As few commands as the limits allow, the ids shared evenly (not 497 and 3).
        assert_eq!(sizes(&usual, false), [400; 5]);
        assert_eq!(batches(&ids[..497], &usual, false).len(), 1);
        assert_eq!(
            batches(&ids[..500], &usual, false)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            [250, 250]
        );
        let per_instance = sizes(&usual, true);
        assert_eq!(per_instance.len(), 17);
        assert!(
            per_instance
                .iter()
                .all(|n| (112..=PER_INSTANCE_BATCH).contains(n)),
            "{per_instance:?}"
        );
        // The longest names EC2 gives: the parameters' quota binds before the output does.
        let long: HashMap<InstanceId, HostKeys> = usual
            .iter()
            .map(|(i, h)| {
                let dns = h
                    .private_dns
                    .replace("ec2.internal", "ap-southeast-2.compute.internal")
                    .replace("ip-10-0-", "ip-10-123-");
                (
                    i.clone(),
                    HostKeys {
                        private_dns: dns,
                        ..h.clone()
                    },
                )
            })
            .collect();
        let long_sizes = sizes(&long, false);
        assert!(
            long_sizes[0] < 497 && long_sizes.iter().sum::<usize>() == 2_000,
            "{long_sizes:?}"
        );
        let document =
            include_str!("../../../../node-scripts/documents/joinkeeper-node-status.json");
        for hosts in [&usual, &long] {
            for batch in batches(&ids, hosts, false) {
                let asked: Vec<HostKeys> = batch.iter().map(|i| hosts[i].clone()).collect();
                let params: usize = parameters(&asked).iter().map(|(_, v)| v.len()).sum();
                assert!(params <= PARAMETER_BUDGET, "{params}");
                assert!(document.len() + params + 200 < 64 * 1024);
            }
        }
    }
}
