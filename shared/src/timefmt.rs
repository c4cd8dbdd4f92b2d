//! RFC 3339 timestamps as the contracts write them: UTC, whole seconds, `Z` suffix.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Formats `t` in UTC with whole seconds, e.g. `2026-11-27T00:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 timestamp.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}
