//! The join record's metadata: the non-secret facts the functions decide on.
//!
//! The functions never decrypt the join record. The control-plane scripts write, right after the
//! SecureString `<prefix>/<cluster>/join-record`, the String parameter
//! `<prefix>/<cluster>/join-record-meta` naming the record's token id, creation, expiry and the
//! record's parameter version. The functions read the meta, and the record's current version with
//! `GetParameter(WithDecryption=false)` (no `kms:Decrypt`); when the versions differ the meta
//! describes another record, and the pair counts as corrupt (so it is regenerated).

use serde::Deserialize;
use time::OffsetDateTime;

use crate::record::RecordError;

/// The meta's layout version.
pub const META_VERSION: u32 = 1;

/// What the functions know about a cluster's current record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub cluster: String,
    pub token_id: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The record's parameter version this meta describes.
    pub record_version: i64,
    pub written_by: String,
}

#[derive(Deserialize)]
struct Wire {
    version: u32,
    #[serde(default)]
    cluster: String,
    token_id: String,
    created_at: String,
    expires_at: String,
    record_version: i64,
    #[serde(default)]
    written_by: String,
}

impl RecordMeta {
    /// Parses and validates the meta's JSON. Errors never quote the input.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        let w: Wire = serde_json::from_str(text).map_err(|e| {
            RecordError::Json(format!("meta at line {} column {}", e.line(), e.column()))
        })?;
        if w.version != META_VERSION {
            return Err(RecordError::UnsupportedVersion(w.version));
        }
        let is_id = w.token_id.len() == 6
            && w.token_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !is_id {
            return Err(RecordError::BadToken);
        }
        let time = |s: &str| {
            crate::timefmt::parse(s).ok_or_else(|| RecordError::Json("meta timestamp".into()))
        };
        let (created_at, expires_at) = (time(&w.created_at)?, time(&w.expires_at)?);
        if expires_at <= created_at {
            return Err(RecordError::ExpiryBeforeCreation {
                created_at: crate::timefmt::rfc3339(created_at),
                expires_at: crate::timefmt::rfc3339(expires_at),
            });
        }
        let cluster = match crate::names::ClusterName::parse(&w.cluster) {
            Ok(c) => c.to_string(),
            Err(_) if w.cluster.is_empty() => String::new(),
            Err(_) => return Err(RecordError::BadCluster("in the meta".into())),
        };
        let written_by: String = w
            .written_by
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(40)
            .collect();
        Ok(RecordMeta {
            cluster,
            token_id: w.token_id,
            created_at,
            expires_at,
            record_version: w.record_version,
            written_by,
        })
    }

    /// The meta of a full record (tests and tools that hold the record).
    pub fn of_record(record: &crate::record::JoinRecord, record_version: i64) -> Self {
        RecordMeta {
            cluster: record.cluster.clone(),
            token_id: record.token_id.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            record_version,
            written_by: String::new(),
        }
    }

    /// The meta's JSON, as the node scripts write it.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "version": META_VERSION,
            "cluster": self.cluster,
            "token_id": self.token_id,
            "created_at": crate::timefmt::rfc3339(self.created_at),
            "expires_at": crate::timefmt::rfc3339(self.expires_at),
            "record_version": self.record_version,
            "written_by": self.written_by,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version":1,"cluster":"demo","token_id":"abcdef","created_at":"2026-11-27T00:00:00Z","expires_at":"2026-11-27T02:00:00Z","record_version":7,"written_by":"i-0123456789abcdef0"}"#;

    #[test]
    fn parses_and_round_trips() {
        let m = RecordMeta::from_json(GOOD).expect("valid");
        assert_eq!(m.record_version, 7);
        assert_eq!(m.token_id, "abcdef");
        assert_eq!(RecordMeta::from_json(&m.to_json()).ok(), Some(m));
    }

    #[test]
    fn rejects_bad_metas_without_quoting_them() {
        let bad = [
            GOOD.replace("\"version\":1", "\"version\":2"),
            GOOD.replace("abcdef", "ABC;rm"),
            GOOD.replace("02:00:00Z", "00:00:00Z"),
            GOOD.replace("record_version\":7", "record_version\":\"x\""),
            "abcdef.0123456789abcdef".to_owned(),
        ];
        for b in bad {
            let err = RecordMeta::from_json(&b).expect_err("invalid").to_string();
            assert!(
                !err.contains("0123456789abcdef") && !err.contains("ABC;rm"),
                "{err}"
            );
        }
    }
}
