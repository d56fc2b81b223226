//! JSON values as structured-merge-diff sees them: a total order (so list keys and set items can
//! be sorted), an equality where `1` and `1.0` are the same number, and the two ways upstream
//! prints a value — Go's `%v` in conflict paths (`[name="nginx"]`) and Go's `encoding/json` in
//! FieldsV1 keys (`k:{"name":"nginx"}`).

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Number, Value};

/// A number as upstream's value package sees it: an int64 or a float64.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i)
    } else if let Some(u) = n.as_u64() {
        // Beyond int64: Go would have decoded a float.
        Num::Float(u as f64)
    } else {
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// Rank of a value's kind in upstream's total order: numbers, strings, bools, lists, maps, null.
fn rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

fn number_cmp(a: &Number, b: &Number) -> Ordering {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Int(x), Num::Float(y)) => float_cmp(x as f64, y),
        (Num::Float(x), Num::Int(y)) => float_cmp(x, y as f64),
        (Num::Float(x), Num::Float(y)) => float_cmp(x, y),
    }
}

/// Upstream's `value.Compare`: a total order over values of any kind. Ints and floats compare
/// numerically; maps compare by their sorted keys, then values, then length.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (l, r) in x.iter().zip(y.iter()) {
                let c = compare(l, r);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            // serde_json maps iterate in key order, which is what a lexical zip needs.
            let mut li = x.iter().peekable();
            let mut ri = y.iter().peekable();
            loop {
                match (li.peek(), ri.peek()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some((lk, lv)), Some((rk, rv))) => match lk.cmp(rk) {
                        // A key only the left has sorts the left first; one only the right has,
                        // the right first (upstream's lexical zip).
                        Ordering::Less => return Ordering::Less,
                        Ordering::Greater => return Ordering::Greater,
                        Ordering::Equal => {
                            let c = compare(lv, rv);
                            if c != Ordering::Equal {
                                return c;
                            }
                            li.next();
                            ri.next();
                        }
                    },
                }
            }
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Upstream's `value.Equals`: deep equality where an int equals the float of the same value.
pub fn equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(l, r)| equals(l, r))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, l)| y.get(k).is_some_and(|r| equals(l, r)))
        }
        _ => a == b,
    }
}

/// Shortest round-trip decimal digits of a finite, non-zero float and its decimal exponent
/// (`d.ddd × 10^exp`).
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `d.ddd` followed by Go's exponent form (`e+06`, `e-07`); `min_exp_digits` is 2 for Go's
/// `%e`-style output.
fn exp_form(digits: &str, exp: i32, min_exp_digits: usize) -> String {
    let mut out = String::new();
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs().to_string();
    for _ in e.len()..min_exp_digits {
        out.push('0');
    }
    out.push_str(&e);
    out
}

/// Plain decimal form of `digits × 10^(exp - len + 1)`.
fn fixed_form(digits: &str, exp: i32) -> String {
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        let mut out = String::from("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(digits);
        out
    } else if point as usize >= digits.len() {
        let mut out = digits.to_string();
        for _ in digits.len()..point as usize {
            out.push('0');
        }
        out
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is what `%v` prints for a float64.
fn go_float_v(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    // Shortest formatting decides on an exponent against a precision of 6 (strconv's rule).
    if !(-4..6).contains(&exp) {
        format!("{sign}{}", exp_form(&digits, exp, 2))
    } else {
        format!("{sign}{}", fixed_form(&digits, exp))
    }
}

/// Go's `encoding/json` float formatting: fixed notation, except below 1e-6 and from 1e21 on.
fn go_float_json(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        // encoding/json trims "e-07" to "e-7".
        format!("{sign}{}", exp_form(&digits, exp, 1))
    } else {
        format!("{sign}{}", fixed_form(&digits, exp))
    }
}

/// Go's `%q` of a string (the quoting upstream uses for strings in printed paths).
pub(crate) use ferry_gostrconv::quote as go_quote;

/// Upstream's `value.ToString`: how a key value appears in a printed path.
pub fn to_go_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match num(n) {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => go_float_v(f),
        },
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(to_go_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", to_go_string(v)))
            .collect::<Vec<_>>()
            .join(""),
    }
}

/// A JSON string literal as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028 and U+2029 are
/// escaped as `\u00XX`, control characters as `\n`-style or `\u00XX` escapes.
pub(crate) fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value serialized as Go's `encoding/json` would (map keys sorted, HTML-safe strings).
pub(crate) fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match num(n) {
            Num::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Num::Float(f) => out.push_str(&go_float_json(f)),
        },
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(v, out);
            }
            out.push('}');
        }
    }
}

/// The kind of a value, as upstream names it in validation errors.
pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) => match num(n) {
            Num::Int(_) => "int64",
            Num::Float(_) => "float64",
        },
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_across_kinds_matches_upstream() {
        let ordered = [
            json!(1),
            json!(1.5),
            json!(2),
            json!("a"),
            json!("b"),
            json!(false),
            json!(true),
            json!([1]),
            json!([1, 2]),
            json!({"a": 1}),
            Value::Null,
        ];
        for w in ordered.windows(2) {
            assert_eq!(compare(&w[0], &w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(&w[1], &w[0]), Ordering::Greater);
        }
        assert_eq!(compare(&json!(1), &json!(1.0)), Ordering::Equal);
        assert!(equals(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!equals(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn maps_compare_key_by_key() {
        assert_eq!(compare(&json!({"a": 1}), &json!({"b": 1})), Ordering::Less);
        assert_eq!(compare(&json!({"a": 1}), &json!({"a": 2})), Ordering::Less);
        assert_eq!(
            compare(&json!({"a": 1}), &json!({"a": 1, "b": 1})),
            Ordering::Less
        );
    }

    #[test]
    fn go_printing() {
        let cases = [
            (json!("nginx"), "\"nginx\""),
            (json!("a\"b\n"), "\"a\\\"b\\n\""),
            (json!(80), "80"),
            (json!(1.5), "1.5"),
            (json!(1e6), "1e+06"),
            (json!(123456.0), "123456"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(true), "true"),
            (Value::Null, "null"),
        ];
        for (v, want) in cases {
            assert_eq!(to_go_string(&v), want, "{v}");
        }
    }

    #[test]
    fn go_json_escapes_html_and_formats_floats() {
        let mut s = String::new();
        go_json(&json!({"b": "<&>", "a": [1, 2.5, 1e21, 1e-7]}), &mut s);
        assert_eq!(s, r#"{"a":[1,2.5,1e+21,1e-7],"b":"\u003c\u0026\u003e"}"#);
    }
}
