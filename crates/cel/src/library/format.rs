//! Kubernetes' format library (1.31+): the named formats `format.dns1123Label()`,
//! `format.dns1123Subdomain()`, `format.dns1035Label()`, `format.qualifiedName()`,
//! `format.dns1123LabelPrefix()`, `format.dns1123SubdomainPrefix()`,
//! `format.dns1035LabelPrefix()`, `format.labelValue()`, `format.uri()`, `format.uuid()`,
//! `format.byte()`, `format.date()` and `format.datetime()`; `format.named(name)`, the
//! format of that name as an optional (none for an unknown name); and
//! `<format>.validate(string)`, `optional.none()` for a valid string, else an optional of
//! the list of what is wrong with it, in upstream's words.

use cel::common::functions::Function;
use cel::common::types::{CelList, CelOptional, CelString, Kind, Type};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::opaque_value;

/// Upstream's `kubernetes.NamedFormat`.
static FORMAT_TYPE: Type = Type::simple_type(Kind::Opaque, "kubernetes.NamedFormat");

/// A named format: what `format.<name>()` gives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    /// The name after `format.`.
    name: &'static str,
    /// What is wrong with a string, nothing when it is of the format.
    validate: fn(&str) -> Vec<String>,
}

impl PartialEq for Format {
    fn eq(&self, other: &Format) -> bool {
        self.name == other.name
    }
}

opaque_value!(Format, &FORMAT_TYPE);

/// Upstream's `ConstantFormats`.
const FORMATS: [Format; 13] = [
    Format {
        name: "dns1123Label",
        validate: |s| dns1123_label(s),
    },
    Format {
        name: "dns1123Subdomain",
        validate: |s| dns1123_subdomain(s),
    },
    Format {
        name: "dns1035Label",
        validate: |s| dns1035_label(s),
    },
    Format {
        name: "qualifiedName",
        validate: qualified_name,
    },
    Format {
        name: "dns1123LabelPrefix",
        validate: |s| dns1123_label(&mask_trailing_dash(s)),
    },
    Format {
        name: "dns1123SubdomainPrefix",
        validate: |s| dns1123_subdomain(&mask_trailing_dash(s)),
    },
    Format {
        name: "dns1035LabelPrefix",
        validate: |s| dns1035_label(&mask_trailing_dash(s)),
    },
    Format {
        name: "labelValue",
        validate: label_value,
    },
    Format {
        name: "uri",
        validate: |s| match super::url::parse_request_uri(s) {
            Ok(_) => Vec::new(),
            Err(e) => vec![e],
        },
    },
    Format {
        name: "uuid",
        validate: |s| problem(is_uuid(s), "does not match the UUID format"),
    },
    Format {
        name: "byte",
        validate: |s| problem(is_base64(s), "invalid base64"),
    },
    Format {
        name: "date",
        validate: |s| problem(is_date(s), "invalid date"),
    },
    Format {
        name: "datetime",
        validate: |s| problem(is_datetime(s), "invalid datetime"),
    },
];

/// `format.<name>()` for each of [`FORMATS`], in order.
const CONSTRUCTORS: [Function; 13] = [
    constant::<0>,
    constant::<1>,
    constant::<2>,
    constant::<3>,
    constant::<4>,
    constant::<5>,
    constant::<6>,
    constant::<7>,
    constant::<8>,
    constant::<9>,
    constant::<10>,
    constant::<11>,
    constant::<12>,
];

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    for (format, constructor) in FORMATS.iter().zip(CONSTRUCTORS) {
        let name = format!("format.{}", format.name);
        env.add_overload(&name, &format!("{name}()"), vec![], constructor)?;
    }
    cel::add_overload!(env, fn named: (CelString) -> CelOptional, name = "format.named")?;
    cel::add_member_overload!(env, fn validate: (Format, CelString) -> CelOptional)?;
    Ok(())
}

fn constant<'b, 'v, const I: usize>(
    _args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(FORMATS[I]))
}

fn named(name: &CelString<'_>) -> CelOptional<'static> {
    match FORMATS.iter().find(|f| f.name == name.inner()) {
        Some(format) => CelOptional::of(Box::new(*format)),
        None => CelOptional::none(),
    }
}

fn validate(format: &Format, value: &CelString<'_>) -> CelOptional<'static> {
    let problems = (format.validate)(value.inner());
    if problems.is_empty() {
        return CelOptional::none();
    }
    let problems: Vec<Box<dyn Val>> = problems
        .into_iter()
        .map(|p| Box::new(CelString::from(p)) as Box<dyn Val>)
        .collect();
    CelOptional::of(Box::new(CelList::from(problems)))
}

fn problem(valid: bool, message: &str) -> Vec<String> {
    if valid {
        Vec::new()
    } else {
        vec![message.to_string()]
    }
}

/// Upstream's `maskTrailingDash`, for the `…Prefix` formats: a name to be completed by a
/// generated suffix may end with a dash. (Upstream drops the character before the dash
/// too; so does this.)
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        Some(rest) if !rest.is_empty() => {
            let mut masked =
                rest[..rest.len() - rest.chars().last().map_or(0, char::len_utf8)].to_string();
            masked.push('a');
            masked
        }
        _ => name.to_string(),
    }
}

const DNS1123_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MESSAGE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Upstream's `MaxLenError`.
fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, whatever its length.
fn is_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Upstream's `IsDNS1123Label`.
pub(crate) fn dns1123_label(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push(too_long(63));
    }
    if !is_label(value) {
        if value.split('.').all(is_label) {
            // A subdomain, and the length was checked: it is the dots.
            problems.push("must not contain dots".to_string());
        } else {
            problems.push(DNS1123_LABEL_MESSAGE.to_string());
        }
    }
    problems
}

/// Upstream's `IsDNS1123Subdomain`.
pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 253 {
        problems.push(too_long(253));
    }
    if !value.split('.').all(is_label) {
        problems.push(DNS1123_SUBDOMAIN_MESSAGE.to_string());
    }
    problems
}

/// Upstream's `IsDNS1035Label`.
fn dns1035_label(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push(too_long(63));
    }
    if !(is_label(value) && value.as_bytes()[0].is_ascii_lowercase()) {
        problems.push(DNS1035_LABEL_MESSAGE.to_string());
    }
    problems
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Upstream's `IsQualifiedName`: a name part with an optional DNS subdomain prefix and `/`.
fn qualified_name(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                let prefixed = dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|p| format!("prefix part {p}"));
                problems.extend(prefixed);
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MESSAGE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        problems.push(format!("name part {}", too_long(63)));
    }
    if !is_qualified_name_part(name) {
        problems.push(format!("name part {QUALIFIED_NAME_MESSAGE}"));
    }
    problems
}

/// Upstream's `IsValidLabelValue`.
fn label_value(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push(too_long(63));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        problems.push(LABEL_VALUE_MESSAGE.to_string());
    }
    problems
}

/// kube-openapi's UUID pattern: 32 hex digits, in either case, dashes optional between the
/// groups of 8-4-4-4-12.
fn is_uuid(s: &str) -> bool {
    let mut rest = s;
    for (i, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix('-').unwrap_or(rest);
        }
        let Some(group) = rest.get(..len) else {
            return false;
        };
        if !group.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        rest = &rest[len..];
    }
    rest.is_empty()
}

/// Go's `base64.StdEncoding.DecodeString` succeeds: padded standard base64 (line breaks are
/// skipped).
fn is_base64(s: &str) -> bool {
    let data: Vec<u8> = s.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    if !data.len().is_multiple_of(4) {
        return false;
    }
    let padding = data.iter().rev().take_while(|b| **b == b'=').count();
    padding <= 2
        && data[..data.len() - padding]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// `2006-01-02`: a full date that exists.
fn is_date(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = &s[range];
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// kube-openapi's `IsDateTime`: a date, `t` (in either case), then
/// `hh:mm:ss(.fraction)?(z|±hh:mm)`.
fn is_datetime(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if s.len() < 4 || !is_date(date) {
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
    use crate::testing::{eval, eval_err};

    #[test]
    fn upstream_examples() {
        let cases = [
            "format.dns1123Label().validate('my-label-name') == optional.none()",
            "format.dns1123Label().validate('UPPER').hasValue()",
            "format.dns1123Subdomain().validate('apiextensions.k8s.io') == optional.none()",
            "format.dns1123Subdomain().validate('a..b').hasValue()",
            "format.dns1035Label().validate('my-label') == optional.none()",
            "format.dns1035Label().validate('1abc').hasValue()",
            "format.qualifiedName().validate('apps.k8s.io/name') == optional.none()",
            "format.qualifiedName().validate('a/b/c').hasValue()",
            "format.dns1123LabelPrefix().validate('my-label-prefix-') == optional.none()",
            "format.dns1123SubdomainPrefix().validate('mysubdomain.prefix.-') == optional.none()",
            "format.dns1035LabelPrefix().validate('my-label-prefix-') == optional.none()",
            "format.labelValue().validate('my-cool-label-Value') == optional.none()",
            "format.labelValue().validate('') == optional.none()",
            "format.labelValue().validate('-x').hasValue()",
            "format.uri().validate('http://example.com') == optional.none()",
            "format.uri().validate('relative').hasValue()",
            "format.uuid().validate('123e4567-e89b-12d3-a456-426614174000') == optional.none()",
            "format.uuid().validate('123E4567E89B12D3A456426614174000') == optional.none()",
            "format.uuid().validate('123e4567-e89b-12d3-a456-42661417400') == optional.of(['does not match the UUID format'])",
            "format.byte().validate('aGVsbG8=') == optional.none()",
            "format.byte().validate('aGVsbG8') == optional.of(['invalid base64'])",
            "format.date().validate('2021-01-01') == optional.none()",
            "format.date().validate('2021-02-29') == optional.of(['invalid date'])",
            "format.date().validate('2024-02-29') == optional.none()",
            "format.datetime().validate('2021-01-01T00:00:00Z') == optional.none()",
            "format.datetime().validate('2021-01-01t00:00:00.123+01:00') == optional.none()",
            "format.datetime().validate('2021-01-01T24:00:00Z') == optional.of(['invalid datetime'])",
            "format.datetime().validate('2021-01-01') == optional.of(['invalid datetime'])",
            "format.named('dns1123Label').hasValue()",
            "!format.named('unknown').hasValue()",
            "format.named('dns1123Label').value().validate('UPPER').hasValue()",
            "format.named('dns1123Label').value() == format.dns1123Label()",
            "format.dns1123Label() != format.dns1035Label()",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }

    #[test]
    fn problems_are_upstreams() {
        let cases = [
            (
                "format.dns1123Label().validate('UPPER').value()",
                r#"["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]"#,
            ),
            (
                "format.dns1123Label().validate('a.b').value()",
                r#"["must not contain dots"]"#,
            ),
            (
                "format.qualifiedName().validate('/x').value()",
                r#"["prefix part must be non-empty"]"#,
            ),
            (
                "format.uri().validate('relative').value()",
                r#"["parse \"relative\": invalid URI for request"]"#,
            ),
        ];
        for (source, want) in cases {
            let got = crate::Program::compile(source)
                .expect("compiles")
                .eval::<&serde_json::Value>(&[])
                .expect("evaluates");
            assert_eq!(got.to_string(), want, "{source}");
        }
        assert!(eval_err("format.nope()").contains("nope"));
    }
}
