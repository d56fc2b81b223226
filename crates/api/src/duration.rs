//! Go durations (`300ms`, `1.5s`, `1h2m3s`), as upstream's flags, annotations and messages write
//! them — parsed here once for every crate.

use std::time::Duration;

/// Parses a Go duration (Go's `time.ParseDuration`): a sequence of decimal numbers, each with
/// a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); `0` alone is zero. Negative durations are
/// refused.
pub fn parse_go(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A duration as Go's `Duration.String` writes it: `0s`, `523ms`, `1.5s`, `1m2.5s`, `5m0s`,
/// `1h0m0s` (what upstream puts in messages: back-offs, pull times, probe timeouts).
pub fn format_go(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    // Below a second: the largest unit that keeps a whole part, with a fraction.
    let fraction = |value: u128, per: u128, unit: &str| {
        let whole = value / per;
        let rest = value % per;
        let digits = per.ilog10() as usize;
        let mut text = format!("{whole}.{rest:0digits$}");
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
        format!("{text}{unit}")
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return fraction(nanos, 1_000, "µs");
    }
    if nanos < 1_000_000_000 {
        return fraction(nanos, 1_000_000, "ms");
    }
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000, "s");
    let minutes = nanos / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_as_go_does() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(42), "42ns"),
            (Duration::from_micros(1500), "1.5ms"),
            (ms(523), "523ms"),
            (ms(1234), "1.234s"),
            (s(2), "2s"),
            (ms(62_500), "1m2.5s"),
            (s(80), "1m20s"),
            (s(300), "5m0s"),
            (s(3600), "1h0m0s"),
            (s(3723), "1h2m3s"),
        ] {
            assert_eq!(format_go(d), want, "{d:?}");
        }
    }

    #[test]
    fn go_durations() {
        let table = [
            ("0", Some(0)),
            ("5s", Some(5000)),
            ("300ms", Some(300)),
            ("1.5s", Some(1500)),
            ("1m30s", Some(90_000)),
            ("1h", Some(3_600_000)),
            ("8760h", Some(31_536_000_000)),
            ("", None),
            ("5", None),
            ("-5s", None),
            ("5d", None),
        ];
        for (input, want) in table {
            assert_eq!(
                parse_go(input).map(|d| d.as_millis() as u64),
                want,
                "{input:?}"
            );
        }
    }
}
