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

/// strfmt's `IsDate` (OpenAPI `date`): `time.Parse("2006-01-02", s)`.
pub fn is_openapi_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let number = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// strfmt's `IsDateTime` (OpenAPI `date-time`): a date, `t` (in either case), then
/// `hh:mm:ss(.fraction)?(z|±hh:mm)`.
pub fn is_openapi_date_time(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if s.len() < 4 || !is_openapi_date(date) {
        return false;
    }
    let digits2 = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
    let bytes = time.as_bytes();
    if bytes.len() < 9 || bytes[2] != b':' || bytes[5] != b':' {
        return false;
    }
    let (hour, minute, second) = (&time[0..2], &time[3..5], &time[6..8]);
    if !(digits2(hour) && digits2(minute) && digits2(second)) {
        return false;
    }
    let mut rest = &time[8..];
    // `(.[0-9]+)?`: any character, then digits.
    if !rest.starts_with('z') && !rest.starts_with('+') && !rest.starts_with('-') {
        let mut chars = rest.chars();
        chars.next();
        let after = chars.as_str();
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &after[digits..];
    }
    let zone_valid = rest == "z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && digits2(&rest[1..3])
            && rest.as_bytes()[3] == b':'
            && digits2(&rest[4..6]));
    zone_valid && hour <= "23" && minute <= "59" && second <= "59"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_dates_and_date_times() {
        assert!(is_openapi_date("2024-02-29") && !is_openapi_date("2023-02-29"));
        assert!(!is_openapi_date("2024-13-01") && !is_openapi_date("24-01-01"));
        assert!(is_openapi_date_time("2024-02-29T23:59:59Z"));
        assert!(is_openapi_date_time("2024-02-29t10:00:00.123+02:00"));
        assert!(!is_openapi_date_time("2024-02-29T24:00:00Z"));
        assert!(!is_openapi_date_time("2024-02-29T10:00:00"));
    }

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
