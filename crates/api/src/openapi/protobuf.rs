//! The v2 document as gnostic's `openapi.v2.Document` protobuf (the
//! message kubectl decodes), field numbers from gnostic's `OpenAPIv2.proto`.
//! Only what the document uses is encoded; anything else is left out.
use serde_json::{Map, Value};

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    pub(super) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub(super) fn key(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    pub(super) fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A string field (proto3: empty is left out).
    pub(super) fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// A string field from a JSON value, if it is a string.
    pub(super) fn string_of(&mut self, field: u32, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str) {
            self.string(field, s);
        }
    }

    pub(super) fn boolean(&mut self, field: u32, v: Option<&Value>) {
        if v.and_then(Value::as_bool) == Some(true) {
            self.key(field, 0);
            self.varint(1);
        }
    }

    pub(super) fn int64(&mut self, field: u32, v: Option<&Value>) {
        if let Some(n) = v.and_then(Value::as_i64).filter(|n| *n != 0) {
            self.key(field, 0);
            self.varint(n as u64);
        }
    }

    pub(super) fn double(&mut self, field: u32, v: Option<&Value>) {
        if let Some(n) = v.and_then(Value::as_f64).filter(|n| *n != 0.0) {
            self.key(field, 1);
            self.0.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// An embedded message field.
    pub(super) fn message(&mut self, field: u32, build: impl FnOnce(&mut Msg)) {
        let mut inner = Msg::default();
        build(&mut inner);
        self.bytes(field, &inner.0);
    }

    /// A repeated string field from a JSON array (or a single string).
    pub(super) fn strings(&mut self, field: u32, v: Option<&Value>) {
        match v {
            Some(Value::Array(a)) => {
                for s in a.iter().filter_map(Value::as_str) {
                    self.bytes(field, s.as_bytes());
                }
            }
            Some(Value::String(s)) => self.bytes(field, s.as_bytes()),
            _ => {}
        }
    }

    /// `Any { yaml = 2 }` holding a JSON value (JSON is YAML).
    pub(super) fn any(&mut self, field: u32, v: &Value) {
        let text = serde_json::to_string(v).unwrap_or_default();
        self.message(field, |m| m.string(2, &text));
    }

    /// `repeated NamedAny` of the object's `x-` keys.
    pub(super) fn vendor_extensions(&mut self, field: u32, o: &Map<String, Value>) {
        for (k, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
            self.message(field, |m| {
                m.string(1, k);
                m.any(2, v);
            });
        }
    }
}

/// `openapi.v2.Document`.
pub(super) fn document(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    m.string_of(1, doc.get("swagger"));
    if let Some(info) = doc.get("info") {
        m.message(2, |i| {
            i.string_of(1, info.get("title"));
            i.string_of(2, info.get("version"));
            i.string_of(3, info.get("description"));
        });
    }
    m.strings(5, doc.get("schemes"));
    m.strings(6, doc.get("consumes"));
    m.strings(7, doc.get("produces"));
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        m.message(8, |p| {
            for (name, item) in paths {
                p.message(2, |n| {
                    n.string(1, name);
                    n.message(2, |pi| path_item(pi, item));
                });
            }
        });
    }
    if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
        m.message(9, |d| {
            for (name, s) in defs {
                d.message(1, |n| {
                    n.string(1, name);
                    n.message(2, |sm| schema(sm, s));
                });
            }
        });
    }
    m.0
}

/// `PathItem`.
fn path_item(m: &mut Msg, item: &Value) {
    for (method, field) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("options", 6),
        ("head", 7),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(method) {
            m.message(field, |o| operation(o, op));
        }
    }
    if let Some(params) = item.get("parameters").and_then(Value::as_array) {
        for p in params {
            m.message(9, |pm| parameters_item(pm, p));
        }
    }
    if let Some(o) = item.as_object() {
        m.vendor_extensions(10, o);
    }
}

/// `Operation`.
fn operation(m: &mut Msg, op: &Value) {
    m.strings(1, op.get("tags"));
    m.string_of(2, op.get("summary"));
    m.string_of(3, op.get("description"));
    m.string_of(5, op.get("operationId"));
    m.strings(6, op.get("produces"));
    m.strings(7, op.get("consumes"));
    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        for p in params {
            m.message(8, |pm| parameters_item(pm, p));
        }
    }
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        m.message(9, |r| {
            for (code, resp) in responses {
                r.message(1, |n| {
                    n.string(1, code);
                    // ResponseValue { response = 1 }
                    n.message(2, |rv| {
                        rv.message(1, |rm| {
                            rm.string_of(1, resp.get("description"));
                            if let Some(s) = resp.get("schema") {
                                // SchemaItem { schema = 1 }
                                rm.message(2, |si| si.message(1, |sm| schema(sm, s)));
                            }
                            if let Some(o) = resp.as_object() {
                                rm.vendor_extensions(5, o);
                            }
                        });
                    });
                });
            }
        });
    }
    m.strings(10, op.get("schemes"));
    m.boolean(11, op.get("deprecated"));
    if let Some(o) = op.as_object() {
        m.vendor_extensions(13, o);
    }
}

/// `ParametersItem`: `Parameter` (body or non-body) or `JsonReference`.
fn parameters_item(m: &mut Msg, p: &Value) {
    if p.get("$ref").is_some() {
        m.message(2, |r| {
            r.string_of(1, p.get("$ref"));
            r.string_of(2, p.get("description"));
        });
        return;
    }
    let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
    m.message(1, |param| {
        if location == "body" {
            param.message(1, |b| {
                b.string_of(1, p.get("description"));
                b.string_of(2, p.get("name"));
                b.string_of(3, p.get("in"));
                b.boolean(4, p.get("required"));
                if let Some(s) = p.get("schema") {
                    b.message(5, |sm| schema(sm, s));
                }
                if let Some(o) = p.as_object() {
                    b.vendor_extensions(6, o);
                }
            });
            return;
        }
        param.message(2, |nb| {
            // Header = 1, FormData = 2, Query = 3, Path = 4; Query and
            // FormData have `allow_empty_value` as field 5, shifting
            // the rest by one.
            let (which, shift) = match location {
                "header" => (1, 0),
                "formData" => (2, 1),
                "query" => (3, 1),
                _ => (4, 0),
            };
            nb.message(which, |q| {
                q.boolean(1, p.get("required"));
                q.string_of(2, p.get("in"));
                q.string_of(3, p.get("description"));
                q.string_of(4, p.get("name"));
                if shift == 1 {
                    q.boolean(5, p.get("allowEmptyValue"));
                }
                q.string_of(5 + shift, p.get("type"));
                q.string_of(6 + shift, p.get("format"));
                q.string_of(8 + shift, p.get("collectionFormat"));
                if let Some(d) = p.get("default") {
                    q.any(9 + shift, d);
                }
                q.boolean(19 + shift, p.get("uniqueItems"));
                if let Some(e) = p.get("enum").and_then(Value::as_array) {
                    for v in e {
                        q.any(20 + shift, v);
                    }
                }
                if let Some(o) = p.as_object() {
                    q.vendor_extensions(22 + shift, o);
                }
            });
        });
    });
}

/// `Schema`.
fn schema(m: &mut Msg, s: &Value) {
    let Some(o) = s.as_object() else {
        return;
    };
    m.string_of(1, o.get("$ref"));
    m.string_of(2, o.get("format"));
    m.string_of(3, o.get("title"));
    m.string_of(4, o.get("description"));
    if let Some(d) = o.get("default") {
        m.any(5, d);
    }
    m.double(6, o.get("multipleOf"));
    m.double(7, o.get("maximum"));
    m.boolean(8, o.get("exclusiveMaximum"));
    m.double(9, o.get("minimum"));
    m.boolean(10, o.get("exclusiveMinimum"));
    m.int64(11, o.get("maxLength"));
    m.int64(12, o.get("minLength"));
    m.string_of(13, o.get("pattern"));
    m.int64(14, o.get("maxItems"));
    m.int64(15, o.get("minItems"));
    m.boolean(16, o.get("uniqueItems"));
    m.int64(17, o.get("maxProperties"));
    m.int64(18, o.get("minProperties"));
    m.strings(19, o.get("required"));
    if let Some(e) = o.get("enum").and_then(Value::as_array) {
        for v in e {
            m.any(20, v);
        }
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let b = *b;
            m.message(21, |a| {
                a.key(2, 0);
                a.varint(u64::from(b));
            });
        }
        Some(ap @ Value::Object(_)) => m.message(21, |a| a.message(1, |sm| schema(sm, ap))),
        _ => {}
    }
    if let Some(t) = o.get("type") {
        m.message(22, |ti| ti.strings(1, Some(t)));
    }
    match o.get("items") {
        Some(Value::Array(items)) => m.message(23, |ii| {
            for i in items {
                ii.message(1, |sm| schema(sm, i));
            }
        }),
        Some(i @ Value::Object(_)) => m.message(23, |ii| ii.message(1, |sm| schema(sm, i))),
        _ => {}
    }
    if let Some(all_of) = o.get("allOf").and_then(Value::as_array) {
        for a in all_of {
            m.message(24, |sm| schema(sm, a));
        }
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        m.message(25, |p| {
            for (name, ps) in props {
                p.message(1, |n| {
                    n.string(1, name);
                    n.message(2, |sm| schema(sm, ps));
                });
            }
        });
    }
    m.string_of(26, o.get("discriminator"));
    m.boolean(27, o.get("readOnly"));
    if let Some(e) = o.get("example") {
        m.any(30, e);
    }
    m.vendor_extensions(31, o);
}
