//! `x-kubernetes-validations`: CEL rules compiled once when a schema is accepted (with
//! upstream's compile-time checks) and evaluated with `self` bound at their schema node and
//! `oldSelf` bound for transition rules, as upstream's `pkg/apiserver/schema/cel`.
//!
//! `self` is an ordinary identifier to the `cel` crate, so the JSON value is bound under that
//! name as it is; no rewriting of the expression is needed.
//!
//! `oldSelf` follows the value through objects (not `x-kubernetes-map-type: atomic` ones), map
//! entries by key, and `x-kubernetes-list-type: map` items by their keys; a rule naming it runs
//! only where an old value correlates, unless it sets `optionalOldSelf`: then it runs always,
//! with `oldSelf` a CEL optional (`optional.none()` where no old value correlates).
//!
//! On update, rules that do not name `oldSelf` ratchet ([`crate::correlation`]): their
//! failures are not reported where the value is unchanged.

use std::collections::HashSet;

use ferry_cel::{Program, Variable};
use serde_json::Value;

use crate::correlation::{MapList, Ratchet};
use crate::cost::{self, Estimating, TotalCost};
use crate::errors::{child, go_quote, go_value, index, key, FieldError};
use crate::schema::{has_newlines, AdditionalProperties, Schema};
use crate::CostLimits;

/// The longest message a `messageExpression` may produce (upstream's
/// `MaxEvaluatedMessageExpressionSizeBytes`).
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// An `x-kubernetes-validations` entry as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RuleSpec {
    pub rule: String,
    pub message: String,
    pub message_expression: String,
    pub reason: Option<String>,
    pub field_path: String,
    pub optional_old_self: Option<bool>,
}

impl RuleSpec {
    pub fn parse(value: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<RuleSpec> {
        let Some(fields) = value.as_object() else {
            errors.push(FieldError::invalid(
                path,
                go_value(value),
                "must be an object",
            ));
            return None;
        };
        let mut string = |name: &str| -> Option<String> {
            match fields.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    errors.push(FieldError::invalid(
                        child(path, name),
                        go_value(other),
                        "must be a string",
                    ));
                    None
                }
            }
        };
        let mut spec = RuleSpec {
            rule: string("rule").unwrap_or_default(),
            message: string("message").unwrap_or_default(),
            message_expression: string("messageExpression").unwrap_or_default(),
            reason: string("reason"),
            field_path: string("fieldPath").unwrap_or_default(),
            optional_old_self: None,
        };
        match fields.get("optionalOldSelf") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => spec.optional_old_self = Some(*b),
            Some(other) => errors.push(FieldError::invalid(
                child(path, "optionalOldSelf"),
                go_value(other),
                "must be a boolean",
            )),
        }
        Some(spec)
    }

    /// Go's `%#v` of the rule, which upstream prints as the value of compilation errors.
    fn go_sharp(&self) -> String {
        let reason = match &self.reason {
            None => "(*apiextensions.FieldValueErrorReason)(nil)".to_string(),
            Some(r) => format!("(*apiextensions.FieldValueErrorReason)({})", go_quote(r)),
        };
        let optional_old_self = match self.optional_old_self {
            None => "(*bool)(nil)".to_string(),
            Some(b) => format!("(*bool)({b})"),
        };
        format!(
            "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional_old_self}}}",
            go_quote(&self.rule),
            go_quote(&self.message),
            go_quote(&self.message_expression),
            go_quote(&self.field_path),
        )
    }

    /// What errors name the rule by: its message, or its expression.
    fn error_string(&self) -> &str {
        if self.message.is_empty() {
            self.rule.trim()
        } else {
            self.message.trim()
        }
    }

    fn default_message(&self) -> String {
        if self.message.is_empty() {
            format!("failed rule: {}", self.rule.trim())
        } else {
            self.message.trim().to_string()
        }
    }
}

/// A rule ready to run.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    program: Program,
    message: Option<Program>,
    uses_old_self: bool,
    /// `fieldPath`, normalized to a field path (`spec.x`, `labels[a.b]`).
    field_path: Option<String>,
}

/// Compiles every rule on the spine of `root`, marking the nodes below which rules exist;
/// returns upstream's compile-time errors, estimated cost limits included.
pub(crate) fn compile(root: &mut Schema, path: &str, limits: CostLimits<'_>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = TotalCost::default();
    let at = Position {
        uncorrelatable: None,
        resource_root: true,
        cardinality: Some(1),
        limits,
    };
    let mut limited = false;
    compile_node(root, path, at, &mut total, &mut limited, &mut errors);
    if limited {
        errors.extend(total.errors(path));
    }
    errors
}

/// Every `rule` and `messageExpression` of a schema (as JSON), wherever its
/// `x-kubernetes-validations` are: what an updated definition already had.
pub(crate) fn expressions(schema: &Value, out: &mut HashSet<String>) {
    match schema {
        Value::Object(o) => {
            if let Some(Value::Array(rules)) = o.get("x-kubernetes-validations") {
                for rule in rules {
                    for field in ["rule", "messageExpression"] {
                        if let Some(source) = rule.get(field).and_then(Value::as_str) {
                            out.insert(source.to_string());
                        }
                    }
                }
            }
            o.values().for_each(|v| expressions(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

/// Where a node is, for compiling its rules.
#[derive(Clone, Copy)]
struct Position<'p> {
    /// The path of the uncorrelatable ancestor (a list that is not a map list, an atomic
    /// map) below which `oldSelf` cannot be used.
    uncorrelatable: Option<&'p str>,
    /// The root of a resource: the custom resource's, or an embedded one.
    resource_root: bool,
    /// How many times the node can occur in an object (`None`: unbounded).
    cardinality: Option<u64>,
    /// Which expressions' estimated costs are limited.
    limits: CostLimits<'p>,
}

fn compile_node(
    s: &mut Schema,
    path: &str,
    at: Position<'_>,
    total: &mut TotalCost,
    limited: &mut bool,
    errors: &mut Vec<FieldError>,
) {
    let uncorrelatable = at.uncorrelatable;
    // Estimated only when some rule is there to estimate.
    let typed = s
        .rules
        .iter()
        .any(|r| !r.rule.trim().is_empty())
        .then(|| cost::decl_type(s, at.resource_root))
        .flatten();
    let mut compiled = Vec::with_capacity(s.rules.len());
    for (i, spec) in s.rules.iter().enumerate() {
        let rule_path = index(&child(path, "x-kubernetes-validations"), i);
        if spec.rule.trim().is_empty() {
            continue;
        }
        let program = match Program::compile(&spec.rule) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(FieldError::invalid(
                    child(&rule_path, "rule"),
                    spec.go_sharp(),
                    e.to_string(),
                ));
                None
            }
        };
        let message = match spec.message_expression.trim() {
            "" => None,
            source => match Program::compile(source) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push(FieldError::invalid(
                        child(&rule_path, "messageExpression"),
                        spec.go_sharp(),
                        format!("messageExpression {e}"),
                    ));
                    None
                }
            },
        };
        if let Some(typed) = &typed {
            let optional = spec.optional_old_self == Some(true);
            let estimating = Estimating { typed, optional };
            let mut limit = |source: &str, error: Option<FieldError>| {
                if at.limits.applies_to(source) {
                    *limited = true;
                    errors.extend(error);
                }
            };
            if let Some(program) = &program {
                let path = child(&rule_path, "rule");
                let scale = |c| cost::expression_cost(c, at.cardinality, typed.min_size);
                let error = total.limit(program, estimating, "rule", path, scale);
                limit(&spec.rule, error);
            }
            if let Some(message) = &message {
                let path = child(&rule_path, "messageExpression");
                let error = total.limit(message, estimating, "messageExpression", path, |c| c);
                limit(&spec.message_expression, error);
            }
        }
        let Some(program) = program else { continue };
        let uses_old_self = program.references("oldSelf");
        if let (true, Some(within)) = (uses_old_self, uncorrelatable) {
            errors.push(FieldError::invalid(
                child(&rule_path, "rule"),
                go_quote(&spec.rule),
                format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {within}"),
            ));
        }
        if let (false, Some(optional)) = (uses_old_self, spec.optional_old_self) {
            errors.push(FieldError::invalid(
                child(&rule_path, "optionalOldSelf"),
                optional.to_string(),
                "may not be set if oldSelf is not used in rule",
            ));
        }
        let field_path = match spec.field_path.as_str() {
            "" => None,
            fp => normalize_field_path(fp, s).ok(),
        };
        compiled.push(CompiledRule {
            program,
            message,
            uses_old_self,
            field_path,
        });
    }
    s.compiled = compiled;

    let mut has_rules = !s.compiled.is_empty();
    let atomic_map = !s.map_correlatable();
    let names: Vec<String> = s.properties.keys().cloned().collect();
    let cardinality = cost::child_cardinality(s, at.cardinality);
    let below = |within, child: &Schema| Position {
        uncorrelatable: within,
        resource_root: child.embedded_resource,
        cardinality,
        limits: at.limits,
    };
    for name in names {
        let sub_path = key(&child(path, "properties"), &name);
        let within = uncorrelatable.or(atomic_map.then_some(path));
        if let Some(property) = s.properties.get_mut(&name) {
            let at = below(within, property);
            compile_node(property, &sub_path, at, total, limited, errors);
            has_rules |= property.has_rules;
        }
    }
    let not_map_list = s.list_type.as_deref() != Some("map");
    if let Some(items) = s.items.as_deref_mut() {
        let within = uncorrelatable.or(not_map_list.then_some(path));
        let at = below(within, items);
        compile_node(items, &child(path, "items"), at, total, limited, errors);
        has_rules |= items.has_rules;
    }
    if let Some(AdditionalProperties::Schema(additional)) = s.additional_properties.as_mut() {
        let at = below(uncorrelatable, additional);
        let path = child(path, "additionalProperties");
        compile_node(additional, &path, at, total, limited, errors);
        has_rules |= additional.has_rules;
    }
    s.has_rules = has_rules;
}

/// Upstream's `ValidFieldPath`: a rule's `fieldPath` (`.a.b`, `.labels['x.y']`) as a field
/// path relative to the rule's node, if every step names a field of the schema.
pub(crate) fn normalize_field_path(field_path: &str, s: &Schema) -> Result<String, String> {
    let tokens = tokenize(field_path);
    let mut tokens = tokens.iter().map(String::as_str);
    let mut out = String::new();
    let mut schema = s;
    let append = |name: &str, out: &mut String, schema: &mut &Schema| -> Result<(), String> {
        if !schema.properties.is_empty() {
            *out = child(out, name);
            *schema = schema
                .properties
                .get(name)
                .ok_or_else(|| "does not refer to a valid field".to_string())?;
        } else if let Some(additional) = &schema.additional_properties {
            *out = key(out, name);
            *schema = additional
                .schema()
                .ok_or_else(|| "does not refer to a valid field".to_string())?;
        } else {
            return Err("does not refer to a valid field".to_string());
        }
        Ok(())
    };
    while let Some(token) = tokens.next() {
        match token {
            "[" => {
                let quoted = tokens.next().ok_or("unexpected end of JSON path")?;
                if quoted.len() < 2 || !quoted.starts_with('\'') || !quoted.ends_with('\'') {
                    return Err(format!("expected single quoted string but got {quoted}"));
                }
                let name = unescape_single_quoted(&quoted[1..quoted.len() - 1])
                    .map_err(|e| format!("invalid string literal: {e}"))?;
                append(&name, &mut out, &mut schema)?;
                match tokens.next() {
                    Some("]") => {}
                    Some(other) => return Err(format!("expected ] but got {other}")),
                    None => return Err("unexpected end of JSON path".to_string()),
                }
            }
            "." => {
                let name = tokens.next().ok_or("unexpected end of JSON path")?;
                append(name, &mut out, &mut schema)?;
            }
            other => return Err(format!("expected [ or . but got: {other}")),
        }
    }
    Ok(out)
}

/// Splits a JSON path into `.`, `[`, `]`, single-quoted strings and the names between.
fn tokenize(path: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = path.char_indices().peekable();
    let mut current = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' if current.is_empty() => {
                let mut quoted = String::from('\'');
                let mut previous = '\'';
                for (_, q) in chars.by_ref() {
                    quoted.push(q);
                    if q == '\'' && previous != '\\' {
                        break;
                    }
                    previous = q;
                }
                tokens.push(quoted);
            }
            '.' | '[' | ']' => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                tokens.push(c.to_string());
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn unescape_single_quoted(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next() {
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('v') => '\u{b}',
            Some('\'') => '\'',
            Some('\\') => '\\',
            Some(other) => return Err(format!("invalid escape char \\{other}")),
            None => return Err("invalid escape char \\".to_string()),
        };
        out.push(escaped);
    }
    Ok(out)
}

/// Evaluates every rule below `root` against `new`, with `old` for transition rules.
/// On update (with `old`), failures of rules that do not name `oldSelf` ratchet.
pub(crate) fn validate(root: &Schema, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if root.has_rules {
        let ratchet = old.map_or(Ratchet::Off, |old| Ratchet::root(root, old));
        let node = Node {
            new,
            old,
            ratchet,
            path: "",
        };
        validate_node(root, node, &mut errors);
    }
    errors
}

/// A value being validated: its correlated old value for `oldSelf`, and its place in the
/// update's correlation for ratcheting (which correlates atomic maps' fields too).
#[derive(Clone, Copy)]
struct Node<'a, 'p> {
    new: &'a Value,
    old: Option<&'a Value>,
    ratchet: Ratchet<'a>,
    path: &'p str,
}

fn validate_node(s: &Schema, node: Node<'_, '_>, errors: &mut Vec<FieldError>) {
    let Node {
        new,
        old,
        ratchet,
        path,
    } = node;
    // Rules judge values, not their absence: a null is the surrounding schema's business.
    if new.is_null() {
        return;
    }
    let old = old.filter(|o| !o.is_null());
    for (spec, rule) in s
        .rules
        .iter()
        .filter(|r| !r.rule.trim().is_empty())
        .zip(&s.compiled)
    {
        evaluate(s, spec, rule, Node { old, ..node }, errors);
    }
    match new {
        Value::Object(fields) => {
            let old_fields = old
                .filter(|_| s.map_correlatable())
                .and_then(Value::as_object);
            let field = |name: &str, v, path: &str, errors: &mut Vec<FieldError>, s| {
                let node = Node {
                    new: v,
                    old: old_fields.and_then(|o| o.get(name)),
                    ratchet: ratchet.field(new, name),
                    path,
                };
                validate_node(s, node, errors);
            };
            if let Some(AdditionalProperties::Schema(additional)) = &s.additional_properties {
                if additional.has_rules {
                    for (name, v) in fields {
                        field(name, v, &key(path, name), errors, additional);
                    }
                }
            }
            for (name, v) in fields {
                if let Some(property) = s.properties.get(name).filter(|p| p.has_rules) {
                    field(name, v, &child(path, name), errors, property);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = s.items.as_deref().filter(|i| i.has_rules) else {
                return;
            };
            let old_items = old.map(|old| MapList::new(s, old)).unwrap_or_default();
            let ratchet_items = ratchet.map_list();
            for (i, item) in items.iter().enumerate() {
                let item_node = Node {
                    new: item,
                    old: old_items.get(item),
                    ratchet: ratchet.item(new, item, &ratchet_items),
                    path: &index(path, i),
                };
                validate_node(item_schema, item_node, errors);
            }
        }
        _ => {}
    }
}

fn evaluate<'a>(
    s: &Schema,
    spec: &RuleSpec,
    rule: &CompiledRule,
    node: Node<'a, '_>,
    errors: &mut Vec<FieldError>,
) {
    let Node {
        new,
        old,
        ratchet,
        path,
    } = node;
    let optional_old_self = spec.optional_old_self == Some(true);
    if rule.uses_old_self && old.is_none() && !optional_old_self {
        // Transition rules need a correlated old value.
        return;
    }
    let type_value = go_quote(&s.type_);
    let bind = |old_self: Option<Variable<'a>>| -> Vec<(&str, Variable<'a>)> {
        let mut variables = vec![("self", Variable::Json(new))];
        variables.extend(old_self.map(|v| ("oldSelf", v)));
        variables
    };
    let variables = match optional_old_self {
        true => bind(Some(Variable::Optional(old))),
        false => bind(old.map(Variable::Json)),
    };
    match rule.program.eval_bool(&variables) {
        Ok(true) => {}
        // Upstream runs the rule and keeps the failure as a warning, which no response carries.
        Ok(false) if !rule.uses_old_self && ratchet.ratchets(new) => {}
        Ok(false) => {
            let field = match &rule.field_path {
                Some(fp) => child(path, fp),
                None => path.to_string(),
            };
            let detail = rule
                .message
                .as_ref()
                // Upstream binds `oldSelf` as it is here, even for an optionalOldSelf rule: such
                // a message naming `oldSelf` falls back to the rule's message.
                .and_then(|m| evaluated_message(m, &bind(old.map(Variable::Json))))
                .unwrap_or_else(|| spec.default_message());
            errors.push(match spec.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
                Some("FieldValueRequired") => FieldError::required(field, detail),
                Some("FieldValueDuplicate") => FieldError::duplicate(field, type_value),
                _ => FieldError::invalid(field, type_value, detail),
            });
        }
        Err(e) => {
            let message = e.to_string();
            let prefix = format!("expression '{}' resulted in error: ", rule.program.source());
            let cause = message.strip_prefix(&prefix).unwrap_or(&message);
            let detail = if cause.contains("no matching overload")
                || cause.starts_with("no such overload")
            {
                format!(
                    "'{cause}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                    spec.error_string()
                )
            } else {
                format!("{cause} evaluating rule: {}", spec.error_string())
            };
            errors.push(FieldError::invalid(path, type_value, detail));
        }
    }
}

/// A `messageExpression`'s message, if it gives a usable one (upstream falls back to the
/// rule's message otherwise).
fn evaluated_message(program: &Program, variables: &[(&str, Variable<'_>)]) -> Option<String> {
    let message = program.eval_string(variables).ok()?;
    let message = message.trim();
    let usable =
        !message.is_empty() && message.len() <= MAX_MESSAGE_BYTES && !has_newlines(message);
    usable.then(|| message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse;
    use serde_json::json;

    fn compiled(schema: Value) -> Result<Schema, Vec<String>> {
        let mut errors = Vec::new();
        let mut s = parse(&schema, "", &mut errors);
        errors.extend(compile(&mut s, "openAPIV3Schema", CostLimits::All));
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(errors.iter().map(ToString::to_string).collect())
        }
    }

    fn run(schema: &Schema, new: Value, old: Option<Value>) -> Vec<String> {
        validate(schema, &new, old.as_ref())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn spec_with(rules: Value, properties: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": rules, "properties": properties}}})
    }

    #[test]
    fn rules_report_as_upstream() {
        let properties = json!({"min": {"type": "integer"}, "max": {"type": "integer"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}});
        let cases: Vec<(Value, Value, Vec<&str>)> = vec![
            (json!([{"rule": "self.min <= self.max"}]), json!({"min": 1, "max": 2}), vec![]),
            (
                json!([{"rule": "self.min <= self.max"}]),
                json!({"min": 3, "max": 2}),
                vec!["spec: Invalid value: \"object\": failed rule: self.min <= self.max"],
            ),
            (
                json!([{"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min", "reason": "FieldValueForbidden"}]),
                json!({"min": 3, "max": 2}),
                vec!["spec.min: Forbidden: min must not exceed max"],
            ),
            (
                json!([{"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' > max ' + string(self.max)"}]),
                json!({"min": 3, "max": 2}),
                vec!["spec: Invalid value: \"object\": min 3 > max 2"],
            ),
            (
                json!([{"rule": "self.min <= self.max", "reason": "FieldValueDuplicate"}]),
                json!({"min": 3, "max": 2}),
                vec!["spec: Duplicate value: \"object\""],
            ),
            (
                json!([{"rule": "'team' in self.labels", "fieldPath": ".labels", "reason": "FieldValueRequired", "message": "needs a team"}]),
                json!({"labels": {}}),
                vec!["spec.labels: Required value: needs a team"],
            ),
            (
                json!([{"rule": "self.nope == 1"}]),
                json!({}),
                vec!["spec: Invalid value: \"object\": No such key: nope evaluating rule: self.nope == 1"],
            ),
        ];
        for (rules, value, want) in cases {
            let schema = compiled(spec_with(rules.clone(), properties.clone())).expect("compiles");
            assert_eq!(run(&schema, json!({"spec": value}), None), want, "{rules}");
        }
    }

    #[test]
    fn rules_run_at_their_node_for_every_item_and_entry() {
        let schema = compiled(json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() <= 3"}]}},
            "labels": {"type": "object", "additionalProperties": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= 0", "message": "must be non-negative"}]}},
        }}}}))
        .expect("compiles");
        assert_eq!(
            run(
                &schema,
                json!({"spec": {"items": ["abc", "abcd"], "labels": {"a": 1, "b.c": -1}}}),
                None
            ),
            vec![
                "spec.items[1]: Invalid value: \"string\": failed rule: self.size() <= 3",
                "spec.labels[b.c]: Invalid value: \"integer\": must be non-negative",
            ]
        );
    }

    #[test]
    fn transition_rules_need_a_correlated_old_value() {
        let immutable = json!([{"rule": "self == oldSelf", "message": "is immutable"}]);
        let schema = compiled(json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "name": {"type": "string", "x-kubernetes-validations": immutable},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "port": {"type": "integer", "x-kubernetes-validations": immutable}}}},
        }}}}))
        .expect("compiles");
        let old = json!({"spec": {"name": "a", "ports": [{"name": "http", "port": 80}]}});
        assert!(run(&schema, json!({"spec": {"name": "b"}}), None).is_empty());
        assert_eq!(
            run(
                &schema,
                json!({"spec": {"name": "b", "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 8080}]}}),
                Some(old)
            ),
            vec![
                "spec.name: Invalid value: \"string\": is immutable",
                "spec.ports[1].port: Invalid value: \"integer\": is immutable",
            ]
        );
    }

    #[test]
    fn optional_old_self_rules_run_without_an_old_value() {
        let schema = |rule: &str| {
            compiled(
                json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer", "x-kubernetes-validations": [
                        {"rule": rule, "optionalOldSelf": true, "message": "may not decrease"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                }}}}),
            )
            .expect("compiles")
        };
        let failed = vec!["spec.replicas: Invalid value: \"integer\": may not decrease"];
        let none: Vec<&str> = Vec::new();
        let cases = [
            (
                "!oldSelf.hasValue() || self >= oldSelf.value()",
                3,
                None,
                &none,
            ),
            (
                "!oldSelf.hasValue() || self >= oldSelf.value()",
                3,
                Some(2),
                &none,
            ),
            (
                "!oldSelf.hasValue() || self >= oldSelf.value()",
                3,
                Some(4),
                &failed,
            ),
            ("oldSelf.orValue(5) <= self", 3, None, &failed),
            ("oldSelf.orValue(0) <= self", 3, None, &none),
            ("oldSelf.orValue(0) <= self", 3, Some(4), &failed),
            ("oldSelf.hasValue()", 3, None, &failed),
            ("oldSelf.hasValue()", 3, Some(3), &none),
        ];
        for (rule, new, old, want) in cases {
            let s = schema(rule);
            let new = json!({"spec": {"replicas": new}});
            let old = old.map(|old| json!({"spec": {"replicas": old}}));
            assert_eq!(&run(&s, new, old), want, "{rule}");
        }

        // `?.` and `[?]` read optional fields of self and of the optional oldSelf.
        let s = compiled(spec_with(
            json!([{"rule": "oldSelf.?labels[?'team'].orValue('') == '' || self.?labels[?'team'] == oldSelf.?labels[?'team']",
                "optionalOldSelf": true, "message": "team is immutable"}]),
            json!({"labels": {"type": "object", "additionalProperties": {"type": "string"}}}),
        ))
        .expect("compiles");
        let spec = |team: &str| json!({"spec": {"labels": {"team": team}}});
        assert!(run(&s, spec("a"), None).is_empty());
        assert!(run(&s, spec("a"), Some(json!({"spec": {}}))).is_empty());
        assert!(run(&s, spec("a"), Some(spec("a"))).is_empty());
        assert_eq!(
            run(&s, spec("b"), Some(spec("a"))),
            vec!["spec: Invalid value: \"object\": team is immutable"]
        );
    }

    #[test]
    fn rules_ratchet_on_unchanged_values() {
        let schema = compiled(json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() <= 3", "message": "too long"}]},
            "other": {"type": "string"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.port < 1024", "message": "privileged only"}]}},
            "tags": {"type": "array", "items": {"type": "string",
                "x-kubernetes-validations": [{"rule": "self != 'bad'", "message": "bad tag"}]}},
            "count": {"type": "integer", "x-kubernetes-validations": [
                {"rule": "self <= 3", "message": "at most 3"},
                {"rule": "self <= oldSelf", "message": "may not grow"}]},
        }}}}))
        .expect("compiles");
        let old = json!({"spec": {"name": "toolong", "other": "a",
            "ports": [{"name": "a", "port": 8080}, {"name": "b", "port": 80}], "tags": ["bad", "ok"], "count": 5}});

        // Unchanged invalid values stay (a reordered map list is unchanged).
        let new = json!({"spec": {"name": "toolong", "other": "b",
            "ports": [{"name": "b", "port": 80}, {"name": "a", "port": 8080}], "tags": ["bad", "ok"], "count": 5}});
        assert!(run(&schema, new, Some(old.clone())).is_empty());

        // Changed ones are judged; a transition rule never ratchets.
        let new = json!({"spec": {"name": "toolonger", "other": "a",
            "ports": [{"name": "a", "port": 8081}, {"name": "b", "port": 80}], "tags": ["bad", "ok", "x"], "count": 6}});
        assert_eq!(
            run(&schema, new.clone(), Some(old.clone())),
            vec![
                "spec.count: Invalid value: \"integer\": at most 3",
                "spec.count: Invalid value: \"integer\": may not grow",
                "spec.name: Invalid value: \"string\": too long",
                "spec.ports[0]: Invalid value: \"object\": privileged only",
                "spec.tags[0]: Invalid value: \"string\": bad tag",
            ]
        );
        // Without an old object (a create), nothing ratchets.
        assert_eq!(run(&schema, old.clone(), None).len(), 4);
    }

    #[test]
    fn estimated_costs_are_limited_as_upstream() {
        let list = |items: Value, max_items: Option<i64>, rule: &str| {
            let mut list = json!({"type": "array", "items": items,
                "x-kubernetes-validations": [{"rule": rule}]});
            if let Some(max) = max_items {
                list["maxItems"] = json!(max);
            }
            compiled(
                json!({"type": "object", "properties": {"spec": {"type": "object",
                "properties": {"list": list}}}}),
            )
        };
        let matches = "self.all(x, x.matches('^[a-z]+$'))";
        let forbidden = "openAPIV3Schema.properties[spec].properties[list].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)";
        // Far over the per-rule limit, it is over the schema's too.
        assert_eq!(
            list(json!({"type": "string"}), None, matches).expect_err("too costly"),
            vec![
                forbidden,
                "openAPIV3Schema.properties[spec].properties[list].x-kubernetes-validations[0].rule: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                "openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
            ]
        );
        assert!(list(
            json!({"type": "string", "maxLength": 10}),
            Some(10),
            matches
        )
        .is_ok());
        // 5 per item of about 1.5 million: within the limit.
        assert!(list(json!({"type": "integer"}), None, "self.all(x, x > 0)").is_ok());

        // A rule's cost counts as many times as its node can occur.
        let nested = |max_items: Option<i64>| {
            let mut outer = json!({"type": "array", "items": {"type": "object", "properties": {
                "tags": {"type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 10},
                    "x-kubernetes-validations": [{"rule": "self.all(t, t.startsWith('a'))"}]}}}});
            if let Some(max) = max_items {
                outer["maxItems"] = json!(max);
            }
            compiled(json!({"type": "object", "properties": {"outer": outer}}))
        };
        assert!(nested(Some(1000)).is_ok());
        // 5,002 per evaluation (1 + 1 + 1,000 × 5), 2,000 times.
        assert_eq!(
            nested(Some(2000)).expect_err("too costly"),
            vec!["openAPIV3Schema.properties[outer].items.properties[tags].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of 1.000400x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"]
        );
        assert!(nested(None).is_err());
    }

    #[test]
    fn compile_time_errors_read_as_upstream() {
        let errors = compiled(spec_with(
            json!([{"rule": "self.min >"}]),
            json!({"min": {"type": "integer"}}),
        ))
        .expect_err("syntax error");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.min >\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:"),
            "{errors:?}"
        );

        let errors = compiled(json!({"type": "object", "properties": {"list": {"type": "array", "maxItems": 10,
            "items": {"type": "string", "maxLength": 10, "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}))
        .expect_err("uncorrelatable");
        assert_eq!(
            errors,
            vec!["openAPIV3Schema.properties[list].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within openAPIV3Schema.properties[list]"]
        );

        let errors = compiled(spec_with(
            json!([{"rule": "true", "optionalOldSelf": true}]),
            json!({}),
        ))
        .expect_err("optionalOldSelf without oldSelf");
        assert_eq!(
            errors,
            vec!["openAPIV3Schema.properties[spec].x-kubernetes-validations[0].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule"]
        );
    }

    #[test]
    fn field_paths_normalize_as_upstream() {
        let mut errors = Vec::new();
        let s = parse(
            &json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}),
            "",
            &mut errors,
        );
        let cases = [
            (".a.b", Ok("a.b".to_string())),
            (".labels['x.y']", Ok("labels[x.y]".to_string())),
            ("['a'].b", Ok("a.b".to_string())),
            (".c", Err("does not refer to a valid field".to_string())),
            ("a", Err("expected [ or . but got: a".to_string())),
            (
                ".labels[x]",
                Err("expected single quoted string but got x".to_string()),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(normalize_field_path(path, &s), want, "{path}");
        }
    }
}
