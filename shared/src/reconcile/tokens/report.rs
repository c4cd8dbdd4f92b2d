//! What the control plane answered about per-instance tokens: the `token`, `csr` and `stray`
//! lines of a node-status answer (token ids and names only, never a secret).

use std::collections::BTreeSet;

use crate::names::InstanceId;

/// What the control plane did about tokens in one command (token ids only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenReport {
    pub minted: Vec<(InstanceId, String)>,
    pub revoked: Vec<InstanceId>,
    pub approved: Vec<(InstanceId, String)>,
    /// Certificate requests made with an instance's token under another name (or after its wait):
    /// (instance, request name, the Node name it asked for or `-`).
    pub denied: Vec<(InstanceId, String, String)>,
    pub strays: BTreeSet<InstanceId>,
    pub failed: usize,
}

impl TokenReport {
    pub fn extend(&mut self, other: TokenReport) {
        self.minted.extend(other.minted);
        self.revoked.extend(other.revoked);
        self.approved.extend(other.approved);
        self.denied.extend(other.denied);
        self.strays.extend(other.strays);
        self.failed += other.failed;
    }
}

/// Pure: the `token`, `csr` and `stray` lines of a node-status answer. Anything malformed (an id
/// that is not an instance id, a word that is not a token id or a name) is left out.
pub fn parse_report(output: &str) -> TokenReport {
    let mut r = TokenReport::default();
    let token_id = |t: &str| {
        t.len() == 6
            && t.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let name = |n: &str| n == "-" || crate::nodes::name_ok(n);
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().take(6).collect();
        let Some(id) = words.get(1).and_then(|w| InstanceId::parse(w).ok()) else {
            continue;
        };
        match words.as_slice() {
            ["token", _, t, "minted"] if token_id(t) => r.minted.push((id, (*t).to_owned())),
            ["token", _, t, "revoked"] if token_id(t) || *t == "-" => r.revoked.push(id),
            ["token", _, _, "failed"] => r.failed += 1,
            ["csr", _, c, "approved", n] if name(c) && name(n) => {
                r.approved.push((id, (*n).to_owned()))
            }
            ["csr", _, c, "denied", n] if name(c) && name(n) => {
                r.denied.push((id, (*c).to_owned(), (*n).to_owned()))
            }
            ["csr", _, _, "failed", _] => r.failed += 1,
            ["stray", _, t] if token_id(t) => {
                r.strays.insert(id);
            }
            _ => {}
        }
    }
    r
}
