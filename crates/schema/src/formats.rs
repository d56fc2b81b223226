//! String formats as upstream checks them: the formats CRDs support
//! (apiextensions-apiserver `pkg/apiserver/validation/formats.go`) with the validators of
//! kube-openapi's `strfmt` default registry. Other formats are ignored, as upstream ignores them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// The format upstream validates a schema node with, after dropping what CRDs do not support
/// (`StripUnsupportedFormatsPostProcess`): string formats from the registry, `int32`/`int64`
/// on integers, `float`/`double` on numbers.
pub(crate) fn checked_format(type_: &str, format: &str) -> String {
    if format.is_empty() {
        return String::new();
    }
    let kept = match type_ {
        "" | "string" => is_known_string_format(format),
        "integer" => matches!(format, "int32" | "int64"),
        "number" => matches!(format, "float" | "double"),
        _ => false,
    };
    if kept {
        format.to_string()
    } else {
        String::new()
    }
}

/// Whether the string-format registry has `format` (names compare without dashes).
pub(crate) fn is_known_string_format(format: &str) -> bool {
    matches!(
        normalize(format).as_str(),
        "bsonobjectid"
            | "uri"
            | "email"
            | "hostname"
            | "ipv4"
            | "ipv6"
            | "cidr"
            | "mac"
            | "uuid"
            | "uuid3"
            | "uuid4"
            | "uuid5"
            | "isbn"
            | "isbn10"
            | "isbn13"
            | "creditcard"
            | "ssn"
            | "hexcolor"
            | "rgbcolor"
            | "byte"
            | "password"
            | "date"
            | "duration"
            | "datetime"
            | "k8sshortname"
            | "k8slongname"
    )
}

fn normalize(format: &str) -> String {
    format.replace('-', "")
}

/// Whether `value` is valid for the (known) string format `format`.
pub(crate) fn is_valid(format: &str, value: &str) -> bool {
    match normalize(format).as_str() {
        "bsonobjectid" => value.len() == 24 && value.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => is_request_uri(value),
        "email" => is_email(value),
        "hostname" => is_hostname(value),
        "ipv4" => is_ipv4(value),
        "ipv6" => value.contains(':') && parse_ip(value).is_some(),
        "cidr" => is_cidr(value),
        "mac" => is_mac(value),
        "uuid" => UUID.is_match(value),
        "uuid3" => UUID3.is_match(value),
        "uuid4" => UUID4.is_match(value),
        "uuid5" => UUID5.is_match(value),
        "isbn" => is_isbn10(value) || is_isbn13(value),
        "isbn10" => is_isbn10(value),
        "isbn13" => is_isbn13(value),
        "creditcard" => is_credit_card(value),
        "ssn" => value.len() == 11 && SSN.is_match(value),
        "hexcolor" => HEXCOLOR.is_match(value),
        "rgbcolor" => RGBCOLOR.is_match(value),
        "byte" => BASE64.is_match(value),
        "password" => true,
        "date" => ferry_api::time::is_openapi_date(value),
        "datetime" => ferry_api::time::is_openapi_date_time(value),
        "duration" => is_duration(value),
        "k8sshortname" => value.len() <= 63 && SHORT_NAME.is_match(value),
        "k8slongname" => value.len() <= 253 && LONG_NAME.is_match(value),
        _ => true,
    }
}

fn regex(source: &str) -> Regex {
    // The patterns are constants of this file; a failure is a bug caught by the tests.
    Regex::new(source).unwrap_or_else(|e| panic!("format pattern {source}: {e}"))
}

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID3: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static SSN: LazyLock<Regex> = LazyLock::new(|| regex(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static HEXCOLOR: LazyLock<Regex> = LazyLock::new(|| regex(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGBCOLOR: LazyLock<Regex> = LazyLock::new(|| {
    let part = r"\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*";
    regex(&format!(r"^rgb\({part},{part},{part}\)$"))
});
static BASE64: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    let atext = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+";
    let local = format!(r#"(?:{atext}(?:\.{atext})*|"(?:[^"\\]|\\.)*")"#);
    let domain = format!(r"(?:{atext}(?:\.{atext})*|\[[^\[\]\\]*\])");
    regex(&format!(
        r#"^(?:(?:[^<>]*?\s*)?<{local}@{domain}>|{local}@{domain})$"#
    ))
});
static SHORT_NAME: LazyLock<Regex> = LazyLock::new(|| regex(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"));
static LONG_NAME: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"));

fn is_hostname(s: &str) -> bool {
    HOSTNAME.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

/// An IP as Go's sloppy parser reads it: IPv4 parts may have leading zeros.
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(ip));
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, part) in octets.iter_mut().zip(parts) {
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

fn is_ipv4(s: &str) -> bool {
    s.contains('.') && parse_ip(s).is_some()
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match parse_ip(ip) {
        Some(IpAddr::V4(_)) => prefix <= 32,
        Some(IpAddr::V6(_)) => prefix <= 128,
        None => false,
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets, `:`/`-` separated pairs or `.` separated quads.
fn is_mac(s: &str) -> bool {
    let valid_count = |n: usize| matches!(n, 6 | 8 | 20);
    let hex = |p: &str, len: usize| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit());
    for sep in [':', '-'] {
        if s.contains(sep) {
            let parts: Vec<&str> = s.split(sep).collect();
            return valid_count(parts.len()) && parts.iter().all(|p| hex(p, 2));
        }
    }
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() > 1 && valid_count(parts.len() * 2) && parts.iter().all(|p| hex(p, 4))
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_control()) {
        return false;
    }
    let without_fragment = s.split('#').next().unwrap_or_default();
    if without_fragment.starts_with('/') {
        return true;
    }
    let Some((scheme, rest)) = without_fragment.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return false;
    }
    match rest.strip_prefix("//") {
        Some(authority) => {
            let host = authority.split(['/', '?']).next().unwrap_or_default();
            !host.contains(' ')
        }
        None => true,
    }
}

fn is_email(s: &str) -> bool {
    EMAIL.is_match(s.trim())
}

fn isbn_digits(s: &str) -> String {
    s.chars().filter(|c| *c != '-' && *c != ' ').collect()
}

fn is_isbn10(s: &str) -> bool {
    let digits = isbn_digits(s);
    let bytes = digits.as_bytes();
    if bytes.len() != 10
        || !bytes[..9].iter().all(u8::is_ascii_digit)
        || !(bytes[9].is_ascii_digit() || bytes[9] == b'X')
    {
        return false;
    }
    let sum: u32 = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let value = if *b == b'X' { 10 } else { u32::from(b - b'0') };
            (i as u32 + 1) * value
        })
        .sum();
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let digits = isbn_digits(s);
    let bytes = digits.as_bytes();
    if bytes.len() != 13 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = bytes[..12]
        .iter()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(bytes[12] - b'0')
}

fn is_credit_card(s: &str) -> bool {
    static CARD: LazyLock<Regex> = LazyLock::new(|| {
        regex(
            r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|(222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11}|6[27][0-9]{14})$",
        )
    });
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !CARD.is_match(&digits) {
        return false;
    }
    // Luhn.
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// strfmt's `ParseDuration`: Go's `time.ParseDuration`, or `<n> <unit>` pairs with units
/// spelled out (`3 days`, `1w`).
fn is_duration(s: &str) -> bool {
    if is_go_duration(s) {
        return true;
    }
    static PAIR: LazyLock<Regex> = LazyLock::new(|| regex(r"((\d+)\s*([A-Za-zµ]+))"));
    let mut found = false;
    for capture in PAIR.captures_iter(s) {
        let unit = capture.get(3).map_or("", |m| m.as_str());
        let known = [
            &[
                "ns",
                "nano",
                "nanos",
                "nanosec",
                "nanosecs",
                "nanosecond",
                "nanoseconds",
            ][..],
            &[
                "us",
                "µs",
                "micro",
                "micros",
                "usec",
                "usecs",
                "microsecond",
                "microseconds",
            ],
            &[
                "ms",
                "milli",
                "millis",
                "millisec",
                "millisecs",
                "millisecond",
                "milliseconds",
            ],
            &["s", "sec", "secs", "second", "seconds"],
            &["m", "min", "mins", "minute", "minutes"],
            &["h", "hr", "hrs", "hour", "hours"],
            &["d", "day", "days"],
            &["w", "wk", "week", "weeks"],
        ]
        .iter()
        .any(|units| units.contains(&unit));
        if !known {
            return false;
        }
        found = true;
    }
    found
}

/// Go's `time.ParseDuration` syntax: `[-+]` then one or more `<decimal><unit>`, or `0`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    static GO: LazyLock<Regex> =
        LazyLock::new(|| regex(r"^(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$"));
    !s.is_empty() && GO.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_and_reject_as_strfmt() {
        let cases = [
            ("date", "2024-02-29", true),
            ("date", "2023-02-29", false),
            ("date", "2024-1-01", false),
            ("date-time", "2024-01-02T15:04:05Z", true),
            ("date-time", "2024-01-02t15:04:05.123+01:00", true),
            ("date-time", "2024-01-02T25:04:05Z", false),
            ("date-time", "2024-01-02", false),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", true),
            ("uuid", "123e4567e89b12d3a456426614174000", true),
            ("uuid", "not-a-uuid", false),
            ("uuid4", "123e4567-e89b-42d3-a456-426614174000", true),
            ("uuid4", "123e4567-e89b-12d3-a456-426614174000", false),
            ("byte", "aGVsbG8=", true),
            ("byte", "hello!", false),
            ("ipv4", "10.0.0.1", true),
            ("ipv4", "10.0.0.256", false),
            ("ipv4", "::1", false),
            ("ipv6", "::1", true),
            ("ipv6", "10.0.0.1", false),
            ("cidr", "10.0.0.0/8", true),
            ("cidr", "10.0.0.0/33", false),
            ("mac", "01:23:45:67:89:ab", true),
            ("mac", "0123.4567.89ab", true),
            ("mac", "01:23:45", false),
            ("hostname", "example.com", true),
            ("hostname", "-bad-.com", false),
            ("email", "a@example.com", true),
            ("email", "Name <a@example.com>", true),
            ("email", "nope", false),
            ("uri", "https://example.com/x", true),
            ("uri", "/path", true),
            ("uri", "relative/path", false),
            ("duration", "1h30m", true),
            ("duration", "3 days", true),
            ("duration", "soon", false),
            ("hexcolor", "#ffF", true),
            ("rgbcolor", "rgb(255, 0, 0)", true),
            ("rgbcolor", "rgb(256, 0, 0)", false),
            ("isbn10", "0321751043", true),
            ("isbn13", "978-0321751041", true),
            ("isbn13", "978-0321751042", false),
            ("creditcard", "4111 1111 1111 1111", true),
            ("creditcard", "4111 1111 1111 1112", false),
            ("ssn", "123-45-6789", true),
            ("ssn", "123456789", false),
            ("bsonobjectid", "507f1f77bcf86cd799439011", true),
            ("k8s-short-name", "my-name", true),
            ("k8s-short-name", "My-name", false),
            ("k8s-long-name", "a.b-c.d", true),
            ("password", "anything", true),
        ];
        for (format, value, want) in cases {
            assert!(is_known_string_format(format), "{format}");
            assert_eq!(is_valid(format, value), want, "{format} {value:?}");
        }
    }

    #[test]
    fn unsupported_formats_are_dropped_as_upstream_drops_them() {
        assert_eq!(checked_format("string", "date-time"), "date-time");
        assert_eq!(checked_format("string", "quantity-ish"), "");
        assert_eq!(checked_format("integer", "int32"), "int32");
        assert_eq!(checked_format("integer", "date"), "");
        assert_eq!(checked_format("number", "double"), "double");
        assert_eq!(checked_format("boolean", "int32"), "");
        assert_eq!(checked_format("", "uuid"), "uuid");
    }
}
