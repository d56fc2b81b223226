//! Timestamps as Kubernetes writes and reads them — RFC 3339 in UTC, to the second
//! (`metav1.Time`, Go's `time.RFC3339`) — on `jiff`, for every crate that needs one.

use jiff::Timestamp;

/// Nanoseconds in a second.
pub const NANOS: i128 = 1_000_000_000;

/// Parses an RFC 3339 timestamp (`2025-11-25T10:00:00Z`, with fractional seconds and a
/// `±hh:mm` offset allowed) into nanoseconds since the Unix epoch.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    // A date alone, or a time without an offset, is not RFC 3339 (jiff would accept some).
    let b = s.as_bytes();
    let zoned = s.ends_with(['Z', 'z']) || (b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-'));
    if !zoned || b.len() < 20 {
        return None;
    }
    s.parse::<Timestamp>().ok().map(|t| t.as_nanosecond())
}

/// Parses an RFC 3339 timestamp into whole seconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    parse_rfc3339_nanos(s).map(|n| n.div_euclid(NANOS) as i64)
}

/// Nanoseconds since the Unix epoch as `2006-01-02T15:04:05Z` (fractions dropped, as
/// `metav1.Time` writes them).
pub fn format_rfc3339_nanos(nanos: i128) -> String {
    format_rfc3339(nanos.div_euclid(NANOS) as i64)
}

/// Seconds since the Unix epoch as `2006-01-02T15:04:05Z`.
pub fn format_rfc3339(secs: i64) -> String {
    match Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => String::new(),
    }
}

/// The current time, as `metav1.Time` writes it.
pub fn now_rfc3339() -> String {
    format_rfc3339(Timestamp::now().as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_go_writes_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("2025-11-25T10:00:00Z", Some("2025-11-25T10:00:00Z")),
            ("2025-11-25T10:00:00.123456Z", Some("2025-11-25T10:00:00Z")),
            ("2025-11-25T12:30:00+02:30", Some("2025-11-25T10:00:00Z")),
            ("2025-11-25T08:00:00-02:00", Some("2025-11-25T10:00:00Z")),
            ("0001-01-01T00:00:00Z", Some("0001-01-01T00:00:00Z")),
            ("2025-11-25", None),
            ("2025-11-25T10:00:00", None),
            ("2025-13-25T10:00:00Z", None),
        ];
        for (input, want) in cases {
            let got = parse_rfc3339_nanos(input).map(format_rfc3339_nanos);
            assert_eq!(got.as_deref(), *want, "{input}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:01:40Z"), Some(100));
        assert_eq!(format_rfc3339(100), "1970-01-01T00:01:40Z");
        assert_eq!(now_rfc3339().len(), 20);
    }
}
