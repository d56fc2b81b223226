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

use ferry_api::names;

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
        validate: |s| names::dns1123_label_problems(s),
    },
    Format {
        name: "dns1123Subdomain",
        validate: |s| names::dns1123_subdomain_problems(s),
    },
    Format {
        name: "dns1035Label",
        validate: |s| names::dns1035_label_problems(s),
    },
    Format {
        name: "qualifiedName",
        validate: names::qualified_name_problems,
    },
    Format {
        name: "dns1123LabelPrefix",
        validate: |s| names::dns1123_label_problems(&mask_trailing_dash(s)),
    },
    Format {
        name: "dns1123SubdomainPrefix",
        validate: |s| names::dns1123_subdomain_problems(&mask_trailing_dash(s)),
    },
    Format {
        name: "dns1035LabelPrefix",
        validate: |s| names::dns1035_label_problems(&mask_trailing_dash(s)),
    },
    Format {
        name: "labelValue",
        validate: names::label_value_problems,
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
        validate: |s| problem(ferry_api::time::is_openapi_date(s), "invalid date"),
    },
    Format {
        name: "datetime",
        validate: |s| problem(ferry_api::time::is_openapi_date_time(s), "invalid datetime"),
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
