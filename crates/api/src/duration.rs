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

#[cfg(test)]
mod tests {
    use super::*;

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
