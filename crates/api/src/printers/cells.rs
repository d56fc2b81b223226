//! What the table printers share: the common columns (`Name`, `Age`), cell helpers (ages as
//! upstream's `HumanDuration`, labels and selectors as kubectl prints them, quantities,
//! RFC 3339 times) — upstream's `pkg/printers/internalversion` helpers.

use serde_json::{Map, Value};

use super::Column;

pub(crate) const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(crate) const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
pub(crate) const CONTAINERS_DESC: &str = "Names of each container in the template.";
pub(crate) const IMAGES_DESC: &str = "Images referenced by each container in the template.";
pub(crate) const SELECTOR_DESC: &str = "Label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

/// The `Name` column (format `name`).
pub(crate) const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: NAME_DESC,
    priority: 0,
};

/// The `Age` column.
pub(crate) const AGE: Column = col("Age", "string", AGE_DESC);

pub(crate) const fn col(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

pub(crate) const fn wide(
    name: &'static str,
    type_: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

/// Upstream's `listWithMoreString`.
pub(crate) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let ret = list.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

/// Upstream's `formatEndpoints` (all ports).
pub(crate) fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = vec![];
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(st(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(st(a, &["ip"]), int(p, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

/// Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's `formatHosts` for ingress rules.
pub(crate) fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = vec![];
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = st(r, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", rules.len() - MAX)
    } else {
        ret
    }
}

/// Upstream's `loadBalancerStatusStringer` with `wide` (never clipped):
/// the sorted, de-duplicated IPs (or hostnames) of the ingress points.
pub(crate) fn load_balancer_status(ingress: &[Value]) -> String {
    let mut result: Vec<&str> = vec![];
    for i in ingress {
        let ip = st(i, &["ip"]);
        let host = st(i, &["hostname"]);
        if !ip.is_empty() {
            result.push(ip);
        } else if !host.is_empty() {
            result.push(host);
        }
    }
    result.sort_unstable();
    result.dedup();
    result.join(",")
}

/// Upstream's `layoutContainerCells`: container names and images, each
/// comma-separated.
pub(crate) fn containers_cells(containers: &Value) -> (String, String) {
    let list = containers.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let names: Vec<&str> = list.iter().map(|c| st(c, &["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| st(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `helper.GetAccessModesAsString`.
pub(crate) fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let mut out = vec![];
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            out.push(short);
        }
    }
    out.join(",")
}

// ---------------------------------------------------------------------------
// Labels and selectors
// ---------------------------------------------------------------------------

/// `labels.FormatLabels`: `k=v` pairs sorted by key, comma-separated, or
/// `<none>`.
pub fn format_labels(labels: &Value) -> String {
    let mut pairs: Vec<(&String, &str)> = match labels.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or("")))
            .collect(),
        None => vec![],
    };
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector's string form, `<none>` when
/// it selects everything (or is absent), `<error>` when it is invalid.
pub fn format_label_selector(selector: &Value) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// `LabelSelectorAsSelector(sel).String()`: requirements sorted by key.
pub(crate) fn selector_string(selector: &Value) -> Result<String, ()> {
    let mut reqs: Vec<(String, String)> = vec![];
    if let Some(m) = at(selector, &["matchLabels"]).as_object() {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in arr(selector, &["matchExpressions"]) {
        let key = st(e, &["key"]);
        let mut values: Vec<&str> = arr(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let s = match st(e, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), s));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(","))
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

pub(crate) use crate::time::NANOS;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in nanoseconds since the
/// Unix epoch: what an absent timestamp is.
pub(crate) const ZERO_TIME: i128 = -62_135_596_800 * NANOS;

/// Parses an RFC 3339 timestamp into nanoseconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    crate::time::parse_rfc3339_nanos(s)
}

/// Formats nanoseconds since the Unix epoch as Go's `time.RFC3339` in UTC.
pub fn format_rfc3339(nanos: i128) -> String {
    crate::time::format_rfc3339_nanos(nanos)
}

/// Upstream's `duration.HumanDuration` of a number of seconds: `5s`,
/// `2m5s`, `3m`, `5h1m`, `3d`, `30d`, `3y20d`, ...; `0s` for -1s and
/// `<invalid>` for less.
pub fn human_duration(seconds: i64) -> String {
    human_duration_nanos(seconds as i128 * NANOS)
}

pub(crate) fn human_duration_nanos(d: i128) -> String {
    // Rust's integer division truncates toward zero like Go's conversions.
    let seconds = d / NANOS;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / (60 * NANOS);
    if minutes < 10 {
        let s = (d / NANOS) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / (3600 * NANOS);
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{h}h", hours / 24)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{dy}d", hours / 24 / 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// A timestamp field's value in nanoseconds, [`ZERO_TIME`] when absent or
/// unparsable.
pub(crate) fn parse_ts(v: &Value) -> i128 {
    v.as_str().and_then(parse_rfc3339).unwrap_or(ZERO_TIME)
}

/// Upstream's `translateTimestampSince`.
pub(crate) fn translate_since(t: i128, now: i128) -> String {
    if t == ZERO_TIME {
        return "<unknown>".to_string();
    }
    human_duration_nanos(now - t)
}

pub(crate) fn translate_timestamp_since(ts: Option<&str>, now: i128) -> String {
    translate_since(ts.and_then(parse_rfc3339).unwrap_or(ZERO_TIME), now)
}

/// The AGE cell: time since `metadata.creationTimestamp`.
/// An IPAddress's parent as upstream prints it: `resource.group[/namespace]/name`, lower case.
pub(crate) fn parent_ref(o: &Value) -> String {
    let Some(parent) = o.pointer("/spec/parentRef").filter(|p| p.is_object()) else {
        return "<none>".into();
    };
    let field = |f: &str| parent.get(f).and_then(Value::as_str).unwrap_or("");
    let mut out = match field("group") {
        "" => field("resource").to_lowercase(),
        group => format!("{}.{}", field("resource"), group).to_lowercase(),
    };
    if !field("namespace").is_empty() {
        out.push('/');
        out.push_str(field("namespace"));
    }
    out.push('/');
    out.push_str(field("name"));
    out
}

pub(crate) fn age(o: &Value, now: i128) -> Value {
    translate_since(parse_ts(at(o, &["metadata", "creationTimestamp"])), now).into()
}

// ---------------------------------------------------------------------------
// JSON access helpers
// ---------------------------------------------------------------------------

pub(crate) static NULL: Value = Value::Null;

/// The value at `path` (object keys), or `null`.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        match cur.get(*p) {
            Some(x) => cur = x,
            None => return &NULL,
        }
    }
    cur
}

/// The string at `path`, or `""`.
pub(crate) fn st<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

pub(crate) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    let x = at(v, path);
    x.as_i64().or_else(|| x.as_f64().map(|f| f as i64))
}

/// The integer at `path`, or 0.
pub(crate) fn int(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

pub(crate) fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub(crate) fn map_len(v: &Value) -> usize {
    v.as_object().map_or(0, Map::len)
}

pub(crate) fn name(o: &Value) -> Value {
    st(o, &["metadata", "name"]).into()
}

pub(crate) fn deleting(o: &Value) -> bool {
    !at(o, &["metadata", "deletionTimestamp"]).is_null()
}

pub(crate) fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    at(o, &["metadata", "annotations", key]).as_str()
}

pub(crate) fn non_empty_or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// An `IntOrString` as upstream's `String()`.
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A quantity as printed: the stored string (or number), `0` when absent.
pub(crate) fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// Go's `printBool`.
pub(crate) fn print_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

pub(crate) trait TrimOnce {
    fn trim_end_matches_once(&self, suffix: &str) -> String;
}

impl TrimOnce for String {
    /// Go's `strings.TrimSuffix`.
    fn trim_end_matches_once(&self, suffix: &str) -> String {
        self.strip_suffix(suffix).unwrap_or(self).to_string()
    }
}
