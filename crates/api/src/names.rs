//! Upstream's name and label validation (`k8s.io/apimachinery/pkg/util/validation`): DNS
//! labels and subdomains (RFC 1123, and RFC 1035 labels), qualified names and label values,
//! each giving upstream's messages for what is wrong — for the API server's validation and
//! CEL's named formats alike.

/// Upstream's message for a value that is not a DNS subdomain.
pub const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
/// Upstream's message for a value that is not a DNS label.
pub const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Whether `s` is a DNS label (RFC 1123).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// Whether `s` is a DNS subdomain (RFC 1123, upstream's `IsDNS1123Subdomain`): at most 253
/// characters, its dot-separated parts of label characters of any length (a VolumeAttachment's
/// `csi-<sha256>` is one part of 68).
pub fn is_dns_subdomain(s: &str) -> bool {
    dns1123_subdomain_problems(s).is_empty()
}

/// Upstream's `MaxLenError`.
pub fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// Upstream's `IsDNS1123Label`: why `value` is not a DNS label (none if it is).
pub fn dns1123_label_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push(max_len_error(63));
    }
    let label_chars = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    };
    if !label_chars(value) {
        if value.split('.').all(label_chars) {
            // A subdomain but not a label: the length was checked, so it is the dots.
            problems.push("must not contain dots".to_string());
        } else {
            problems.push(LABEL_MESSAGE.to_string());
        }
    }
    problems
}

/// Upstream's `IsDNS1035Label` (service names): a DNS label that starts with a letter.
pub fn dns1035_label_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push(max_len_error(63));
    }
    let bytes = value.as_bytes();
    let valid = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !valid {
        problems.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    problems
}

/// Upstream's `IsDNS1123Subdomain`.
pub fn dns1123_subdomain_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 253 {
        problems.push(max_len_error(253));
    }
    if value.is_empty() || !value.split('.').all(is_dns_label_chars) {
        problems.push(SUBDOMAIN_MESSAGE.to_string());
    }
    problems
}

/// A DNS label's characters, whatever its length.
fn is_dns_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// The name part of a qualified name and a label value: alphanumerics, `-`, `_` and `.`,
/// alphanumeric at both ends.
fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

const QUALIFIED_NAME_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// Upstream's `IsQualifiedName` (label keys, `appProtocol`, `loadBalancerClass`): a name part
/// with an optional DNS subdomain prefix and `/`.
pub fn qualified_name_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                problems.extend(
                    dns1123_subdomain_problems(prefix)
                        .into_iter()
                        .map(|p| format!("prefix part {p}")),
                );
            }
            *name
        }
        _ => {
            problems.push(format!("a qualified name {QUALIFIED_NAME_MESSAGE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            return problems;
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        problems.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        problems.push(format!("name part {QUALIFIED_NAME_MESSAGE}"));
    }
    problems
}

/// Upstream's `IsValidLabelValue`.
pub fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push(max_len_error(63));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        problems.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_parts_may_be_longer_than_labels() {
        let long = format!("csi-{}", "a".repeat(64));
        assert!(is_dns_subdomain(&long) && !is_dns_label(&long));
        assert!(is_dns_subdomain("example.com") && is_dns_subdomain("a"));
        assert!(!is_dns_subdomain("") && !is_dns_subdomain("-a") && !is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert_eq!(dns1123_subdomain_problems(&long), Vec::<String>::new());
        assert_eq!(
            dns1123_label_problems(&long),
            vec!["must be no more than 63 characters".to_string()]
        );
    }
}
