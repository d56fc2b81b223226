//! The Prometheus text exposition format as far as the kubelet's `/metrics/resource` uses it:
//! `name{label="value",...} value [timestamp-ms]` lines, comments skipped, label values with
//! `\\`, `\"` and `\n` escapes.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
    /// Its timestamp in milliseconds, if given.
    pub timestamp_ms: Option<i64>,
}

/// The samples of `text`; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let consumed;
        loop {
            // A label name up to '=', or the end of the set.
            while chars
                .peek()
                .is_some_and(|(_, c)| *c == ',' || c.is_whitespace())
            {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => {
                    consumed = *i + 1;
                    break;
                }
                None => return None,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, '"') => break,
                    (_, c) => value.push(c),
                }
            }
            labels.insert(key.trim().to_string(), value);
        }
        rest = &after[consumed..];
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next()? {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let timestamp_ms = fields.next().and_then(|t| t.parse().ok());
    Some(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_lines_parse() {
        let text = "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time\n\
# TYPE container_cpu_usage_seconds_total counter\n\
container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web-1\"} 1.5 1700000000123\n\
node_memory_working_set_bytes 1.2345e+08 1700000000000\n\
scrape_error 0\n\
odd{a=\"x\\\"y\\\\z\\n\"} 3\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].name, "container_cpu_usage_seconds_total");
        assert_eq!(samples[0].labels["pod"], "web-1");
        assert_eq!(samples[0].value, 1.5);
        assert_eq!(samples[0].timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(samples[1].value, 123_450_000.0);
        assert_eq!(samples[2].timestamp_ms, None);
        assert_eq!(samples[3].labels["a"], "x\"y\\z\n");
        assert!(parse("broken{a=\"x} 1\n").is_empty());
    }
}
