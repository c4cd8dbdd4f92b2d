//! Which bootstrap token each recent Node joined with, as the revoke document reports it from the
//! kubelets' TLS-bootstrap CertificateSigningRequests (`spec.username`
//! `system:bootstrap:<token id>`, subject CN `system:node:<name>`). Kubernetes deletes approved
//! CSRs an hour after approval, so these are the joins of about the last hour only.

use super::name_ok;

/// One Node and the token its kubelet bootstrapped with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    pub token_id: String,
    pub node: String,
    /// The token was still on the control plane after the revocation.
    pub token_live: bool,
}

/// What the control plane could tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Joins {
    /// False when the CSRs could not be read (or the script predates the report).
    pub known: bool,
    pub list: Vec<Join>,
    /// Joins the control plane saw but did not print (its output is bounded).
    pub left_out: usize,
}

/// The `joined token_id=<id> node=<name> token=<live|gone>` lines and the `joins-seen <n>` line
/// of the revoke document's output. Lines that do not parse (a hostile name, a wrong id) are
/// left out and counted in `left_out`.
pub fn parse_joins(stdout: &str) -> Joins {
    let mut joins = Joins::default();
    let mut seen = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("joined ") {
            let field = |key: &str| rest.split_whitespace().find_map(|w| w.strip_prefix(key));
            let join = match (field("token_id="), field("node="), field("token=")) {
                (Some(id), Some(node), Some(state @ ("live" | "gone")))
                    if token_id_ok(id) && name_ok(node) =>
                {
                    Join {
                        token_id: id.to_owned(),
                        node: node.to_owned(),
                        token_live: state == "live",
                    }
                }
                _ => continue,
            };
            joins.list.push(join);
        } else if let Some(n) = line.strip_prefix("joins-seen ") {
            seen = n.trim().parse::<usize>().ok();
        }
    }
    match seen {
        Some(n) => {
            joins.known = true;
            joins.left_out = n.saturating_sub(joins.list.len());
        }
        None => joins.list.clear(),
    }
    joins
}

/// A bootstrap token id: six lowercase letters or digits.
pub fn token_id_ok(id: &str) -> bool {
    id.len() == 6
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_lines() {
        let out = "revoked token_id=aaaaaa\n\
                   joined token_id=aaaaaa node=intruder token=gone\n\
                   joined token_id=cccccc node=ip-10-0-0-5.ec2.internal token=live\n\
                   joined token_id=AAAAAA node=x token=gone\n\
                   joined token_id=aaaaaa node=a;b token=gone\n\
                   joined token_id=aaaaaa node=y token=maybe\n\
                   joins-seen 7\n\
                   revoke-tokens cluster=demo kept=cccccc revoked=1\n";
        let joins = parse_joins(out);
        assert!(joins.known);
        assert_eq!(
            joins.list,
            vec![
                Join {
                    token_id: "aaaaaa".into(),
                    node: "intruder".into(),
                    token_live: false
                },
                Join {
                    token_id: "cccccc".into(),
                    node: "ip-10-0-0-5.ec2.internal".into(),
                    token_live: true
                },
            ]
        );
        assert_eq!(
            joins.left_out, 5,
            "three refused lines and two never printed"
        );
    }

    #[test]
    fn no_count_line_means_unknown() {
        for out in [
            "joins unknown\nrevoke-tokens cluster=demo kept=cccccc revoked=0\n",
            "joined token_id=aaaaaa node=n token=gone\nrevoke-tokens cluster=demo kept=cccccc revoked=0\n",
            "joins-seen many\n",
        ] {
            let joins = parse_joins(out);
            assert!(!joins.known && joins.list.is_empty(), "{out}");
        }
        let none = parse_joins("joins-seen 0\n");
        assert!(none.known && none.list.is_empty() && none.left_out == 0);
    }
}
