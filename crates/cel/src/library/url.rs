//! Kubernetes' URL library: `url(string)` (an absolute URI or an absolute path, else an
//! error), `isURL(string)`, and on a URL `getScheme()`, `getHost()`, `getHostname()`,
//! `getPort()`, `getEscapedPath()` and `getQuery()` (a map of each key to its values).
//!
//! URLs are parsed as Go's `net/url` does (`url.ParseRequestURI`, then `url.Parse`), whose
//! results and errors upstream's functions give: the `url` crate normalizes where Go does
//! not (default ports, host case, relative references need a base).

use std::collections::HashMap;

use cel::common::types::{CelBool, CelList, CelMap, CelMapKey, CelString, Kind, Type};
use cel::common::value::Val;
use cel::{DeclarationError, Env, ExecutionError};

use super::{error, opaque_value};

/// Upstream's `kubernetes.URL`.
static URL_TYPE: Type = Type::simple_type(Kind::Opaque, "kubernetes.URL");

/// A URL, as Go's `url.URL` holds it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Url {
    scheme: String,
    /// What follows the scheme of a URL such as `mailto:x@example.com`.
    opaque: String,
    /// `host` or `host:port`, brackets around an IPv6 address kept.
    host: String,
    /// Unescaped.
    path: String,
    /// The path as written, when that is not the default escaping of `path`.
    raw_path: String,
    raw_query: String,
    fragment: String,
}

opaque_value!(Url, &URL_TYPE);

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn url: (CelString) -> Result<Url>)?;
    cel::add_overload!(env, fn is_url: (CelString) -> CelBool, name = "isURL")?;
    cel::add_member_overload!(env, fn get_scheme: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_host: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_hostname: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_port: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_escaped_path: (Url) -> CelString)?;
    cel::add_member_overload!(env, fn get_query: (Url) -> CelMap)?;
    Ok(())
}

fn url(input: &CelString<'_>) -> Result<Url, ExecutionError> {
    let input = input.inner();
    parse_request_uri(input)
        .and_then(|_| parse(input))
        .map_err(|e| {
            error(
                "url",
                format!("URL parse error during conversion from string: {e}"),
            )
        })
}

fn is_url(input: &CelString<'_>) -> CelBool {
    parse_request_uri(input.inner()).is_ok().into()
}

fn get_scheme(url: &Url) -> CelString<'static> {
    url.scheme.clone().into()
}

fn get_host(url: &Url) -> CelString<'static> {
    url.host.clone().into()
}

fn get_hostname(url: &Url) -> CelString<'static> {
    split_host_port(&url.host).0.to_string().into()
}

fn get_port(url: &Url) -> CelString<'static> {
    split_host_port(&url.host).1.to_string().into()
}

fn get_escaped_path(url: &Url) -> CelString<'static> {
    url.escaped_path().into()
}

fn get_query(url: &Url) -> CelMap<'static> {
    let mut query: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in parse_query(&url.raw_query) {
        match query.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value),
            None => query.push((key, vec![value])),
        }
    }
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = query
        .into_iter()
        .map(|(key, values)| {
            let values: Vec<Box<dyn Val>> = values
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val>)
                .collect();
            (
                CelMapKey::from(key),
                Box::new(CelList::from(values)) as Box<dyn Val>,
            )
        })
        .collect();
    CelMap::from(map)
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path, no fragment.
pub(crate) fn parse_request_uri(input: &str) -> Result<Url, String> {
    parse_reference(input, true).map_err(|e| wrap(input, &e))
}

/// Go's `url.Parse`, fragment included.
fn parse(input: &str) -> Result<Url, String> {
    let (reference, fragment) = input.split_once('#').unwrap_or((input, ""));
    let mut url = parse_reference(reference, false).map_err(|e| wrap(input, &e))?;
    url.fragment = unescape(fragment, Mode::Fragment).map_err(|e| wrap(input, &e))?;
    Ok(url)
}

/// Go's `url.Error`: `parse "<url>": <cause>`.
fn wrap(input: &str, cause: &str) -> String {
    format!("parse {input:?}: {cause}")
}

/// Go's `url.parse`.
fn parse_reference(input: &str, via_request: bool) -> Result<Url, String> {
    if input.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if input.is_empty() && via_request {
        return Err("empty url".into());
    }
    let mut url = Url::default();
    if input == "*" {
        url.path = "*".into();
        return Ok(url);
    }
    let (scheme, rest) = split_scheme(input)?;
    url.scheme = scheme.to_ascii_lowercase();
    let mut rest = rest;
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, query)) = rest.split_once('?') {
        url.raw_query = query.to_string();
        rest = before;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_string();
            return Ok(url);
        }
        if via_request {
            return Err("invalid URI for request".into());
        }
        if rest.split('/').next().is_some_and(|s| s.contains(':')) {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    let authority_allowed = !url.scheme.is_empty() || (!via_request && !rest.starts_with("///"));
    if authority_allowed && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        url.host = parse_authority(authority)?;
        rest = path;
    }
    url.path = unescape(rest, Mode::Path)?;
    if escape(&url.path, Mode::Path) != rest {
        url.raw_path = rest.to_string();
    }
    Ok(url)
}

/// Go's `getScheme`: the scheme and what follows its colon, or no scheme.
fn split_scheme(input: &str) -> Result<(&str, &str), String> {
    for (i, c) in input.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok((&input[..i], &input[i + 1..])),
            _ => return Ok(("", input)),
        }
    }
    Ok(("", input))
}

/// Go's `parseAuthority`: the host (and port), after checking the user information.
fn parse_authority(authority: &str) -> Result<String, String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let host = parse_host(host)?;
    if let Some(userinfo) = userinfo {
        let valid = userinfo
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&c));
        if !valid {
            return Err("net/url: invalid userinfo".into());
        }
        unescape(userinfo, Mode::UserPassword)?;
    }
    Ok(host)
}

/// Go's `parseHost`: a host whose port, if any, is digits.
fn parse_host(host: &str) -> Result<String, String> {
    let colon_port = if host.starts_with('[') {
        let end = host.rfind(']').ok_or("missing ']' in host")?;
        &host[end + 1..]
    } else {
        host.rfind(':').map_or("", |i| &host[i..])
    };
    if !valid_optional_port(colon_port) {
        return Err(format!("invalid port {colon_port:?} after host"));
    }
    unescape(host, Mode::Host)
}

/// `""`, or `:` followed by digits.
fn valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Go's `splitHostPort`: the host name (without brackets) and the port.
fn split_host_port(host_port: &str) -> (&str, &str) {
    let (mut host, mut port) = (host_port, "");
    if let Some(i) = host_port.rfind(':') {
        if valid_optional_port(&host_port[i..]) {
            (host, port) = (&host_port[..i], &host_port[i + 1..]);
        }
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        host = inner;
    }
    (host, port)
}

impl Url {
    /// Go's `EscapedPath`: the path as written when that is a valid escaping of it, else its
    /// default escaping.
    fn escaped_path(&self) -> String {
        if !self.raw_path.is_empty()
            && valid_encoded(&self.raw_path)
            && unescape(&self.raw_path, Mode::Path).is_ok_and(|p| p == self.path)
        {
            return self.raw_path.clone();
        }
        if self.path == "*" {
            return "*".into();
        }
        escape(&self.path, Mode::Path)
    }
}

/// Go's `ParseQuery`, with the pairs that do not parse left out, in order.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = unescape(key, Mode::QueryComponent).ok()?;
            let value = unescape(value, Mode::QueryComponent).ok()?;
            Some((key, value))
        })
        .collect()
}

/// Go's `encoding` modes: what each part of a URL escapes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    UserPassword,
    QueryComponent,
    Fragment,
}

/// Go's `shouldEscape`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if mode == Mode::Host && b"!$&'()*+,;=:[]<>\"".contains(&c) {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => c == b'?',
            Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            // A host's others were let through above.
            Mode::QueryComponent | Mode::Host => true,
            Mode::Fragment => false,
        },
        b'!' | b'(' | b')' | b'*' if mode == Mode::Fragment => false,
        _ => true,
    }
}

/// Go's `validEncoded` for paths.
fn valid_encoded(s: &str) -> bool {
    s.bytes()
        .all(|c| b"!$&'()*+,;=:@[]%".contains(&c) || !should_escape(c, Mode::Path))
}

/// Go's `escape`.
fn escape(s: &str, mode: Mode) -> String {
    let mut escaped = String::with_capacity(s.len());
    for c in s.bytes() {
        if should_escape(c, mode) {
            escaped.push_str(&format!("%{c:02X}"));
        } else {
            escaped.push(char::from(c));
        }
    }
    escaped
}

/// Go's `unescape`: `%XX` decoded (`+` as a space in query components); a malformed escape,
/// or a character a host cannot have, is an error.
fn unescape(s: &str, mode: Mode) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| h.bytes().all(|b| b.is_ascii_hexdigit()))
                });
                let Some(byte) = hex else {
                    let end = (i + 3).min(bytes.len());
                    return Err(format!("invalid URL escape {:?}", &s[i..end]));
                };
                if mode == Mode::Host && byte < 0x80 && &s[i..i + 3] != "%25" {
                    return Err(format!("invalid URL escape {:?}", &s[i..i + 3]));
                }
                decoded.push(byte);
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                decoded.push(b' ');
                i += 1;
            }
            c => {
                if mode == Mode::Host && c < 0x80 && should_escape(c, mode) {
                    return Err(format!(
                        "invalid character {:?} in host name",
                        char::from(c).to_string()
                    ));
                }
                decoded.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&decoded).into_owned())
}

#[cfg(test)]
mod tests {
    use crate::testing::{eval, eval_err};

    #[test]
    fn upstream_examples() {
        let cases = [
            "isURL('https://user:pass@example.com:80/path?query=val#fragment')",
            "isURL('/absolute-path')",
            "!isURL('https://a:b:c/')",
            "!isURL('../relative-path')",
            "url('/path').getScheme() == ''",
            "url('https://example.com/').getScheme() == 'https'",
            "url('https://example.com:80/').getHost() == 'example.com:80'",
            "url('https://example.com/').getHost() == 'example.com'",
            "url('https://[::1]:80/').getHost() == '[::1]:80'",
            "url('https://[::1]/').getHost() == '[::1]'",
            "url('/path').getHost() == ''",
            "url('https://example.com:80/').getHostname() == 'example.com'",
            "url('https://127.0.0.1:80/').getHostname() == '127.0.0.1'",
            "url('https://[::1]:80/').getHostname() == '::1'",
            "url('/path').getHostname() == ''",
            "url('https://example.com:80/').getPort() == '80'",
            "url('https://example.com:443/').getPort() == '443'",
            "url('https://example.com/').getPort() == ''",
            "url('/path').getPort() == ''",
            "url('https://example.com/path').getEscapedPath() == '/path'",
            "url('https://example.com/path with spaces/').getEscapedPath() == '/path%20with%20spaces/'",
            "url('https://example.com/a%2Fb').getEscapedPath() == '/a%2Fb'",
            "url('https://example.com').getEscapedPath() == ''",
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == {'k1': ['a'], 'k2': ['b', 'c']}",
            "url('https://example.com/path?key with spaces=value with spaces').getQuery() == {'key with spaces': ['value with spaces']}",
            "url('https://example.com/path?').getQuery() == {}",
            "url('https://example.com/path').getQuery() == {}",
            "url('https://example.com/path?a=%20b+c').getQuery() == {'a': [' b c']}",
            "url('https://user:pass@example.com:80/path?query=val#fragment').getHost() == 'example.com:80'",
            "url('https://example.com/') == url('https://example.com/')",
            "url('https://example.com/') != url('https://example.com/x')",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }

    #[test]
    fn invalid_urls_fail_with_gos_errors() {
        let cases = [
            ("url('https://a:b:c/')", "URL parse error during conversion from string: parse \"https://a:b:c/\": invalid port \":c\" after host"),
            ("url('../relative-path')", "URL parse error during conversion from string: parse \"../relative-path\": invalid URI for request"),
            ("url('')", "parse \"\": empty url"),
            ("url(':x')", "missing protocol scheme"),
            ("url('https://[::1/')", "missing ']' in host"),
            ("url('/a%zz')", "invalid URL escape \"%zz\""),
        ];
        for (source, want) in cases {
            let message = eval_err(source);
            assert!(message.contains(want), "{source}: {message}");
        }
    }
}
