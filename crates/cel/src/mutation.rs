//! Mutation programs, the CEL of MutatingAdmissionPolicies: their struct literals construct
//! the patch.
//!
//! - `Object{…}` and `Object.<field>(.<field>)*{…}` (for a patchType ApplyConfiguration) give
//!   a struct of the fields written, a JSON object once evaluated: the caller merges it with
//!   server-side-apply semantics. Any depth compiles (field names are not checked against a
//!   schema here); evaluating checks, as upstream's `CheckTypeNamesMatchFieldPathNames`, that
//!   each object inside the result's is named for its field path from it
//!   (`Object{spec: Object.spec{…}}`; lists and maps add nothing to the path).
//! - `JSONPatch{op: …, path: …, from: …, value: …}` (for a patchType JSONPatch) gives a map
//!   of those fields; any other field does not compile.
//! - `jsonpatch.escapeKey(key)` escapes a key for a JSON pointer (`~` as `~0`, `/` as `~1`).
//!
//! A field initialized with `?field: opt` is left out when `opt` holds no value. Any other
//! struct type name does not compile, in mutation programs as in the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, StructExpr};
use cel::common::types::{CelMap, CelMapKey, CelOptional, CelString, CelStruct, Type};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, StructType};

use crate::CompileError;

/// The type JSON patch operations are constructed as.
const JSON_PATCH: &str = "JSONPatch";
/// The fields of a [`JSON_PATCH`]: `value` may be anything, the others are strings.
const JSON_PATCH_FIELDS: [&str; 4] = ["op", "path", "from", "value"];
/// The type of the object an apply configuration patches, and the prefix of its fields'.
const OBJECT: &str = "Object";

/// Registers the types `program`'s struct literals construct, and `jsonpatch.escapeKey`,
/// on `env`.
///
/// # Errors
///
/// Fails, in cel-go's checker's words, at the first literal of any other type, or of a
/// `JSONPatch` with another field.
pub(crate) fn declare(
    env: &mut Env,
    program: &cel::Program,
    source: &str,
) -> Result<(), CompileError> {
    let mut names = BTreeSet::new();
    for (id, literal) in struct_literals(program.expression()) {
        let name = type_name(literal);
        if name == JSON_PATCH {
            check_json_patch_fields(program, source, literal)?;
        } else if !is_object_type(name) {
            return Err(undeclared(program, source, id, name));
        }
        names.insert(name);
    }
    for name in names {
        let declared = if name == JSON_PATCH {
            env.add_type(JsonPatchType(Type::new_struct(name.to_string())))
        } else {
            env.add_type(ObjectType(Type::new_struct(name.to_string())))
        };
        declared.map_err(|e| CompileError(format!("declaring the type {name}: {e}")))?;
    }
    cel::add_overload!(env, fn escape_key: (CelString) -> CelString, name = "jsonpatch.escapeKey")
        .map_err(|e| CompileError(format!("declaring jsonpatch.escapeKey: {e}")))
}

/// Rejects the struct literals of a program whose environment declares no struct type,
/// as cel-go's checker does.
pub(crate) fn reject_struct_literals(
    program: &cel::Program,
    source: &str,
) -> Result<(), CompileError> {
    match struct_literals(program.expression()).first() {
        Some((id, literal)) => Err(undeclared(program, source, *id, type_name(literal))),
        None => Ok(()),
    }
}

/// The struct literals in `expr`, outermost first, with their expression's id.
fn struct_literals(expr: &IdedExpr) -> Vec<(u64, &StructExpr)> {
    let mut found = Vec::new();
    let mut pending = vec![expr];
    while let Some(expr) = pending.pop() {
        match &expr.expr {
            Expr::Struct(literal) => {
                found.push((expr.id, literal));
                pending.extend(literal.entries.iter().rev().map(|e| entry_value(&e.expr)));
            }
            Expr::Call(call) => {
                pending.extend(call.args.iter().rev());
                pending.extend(call.target.as_deref());
            }
            Expr::Select(select) => pending.push(&select.operand),
            Expr::List(list) => pending.extend(list.elements.iter().rev()),
            Expr::Map(map) => {
                for entry in map.entries.iter().rev() {
                    pending.push(entry_value(&entry.expr));
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        pending.push(&entry.key);
                    }
                }
            }
            Expr::Comprehension(c) => pending.extend([
                &c.result,
                &c.loop_step,
                &c.loop_cond,
                &c.accu_init,
                &c.iter_range,
            ]),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    found
}

fn entry_value(entry: &EntryExpr) -> &IdedExpr {
    match entry {
        EntryExpr::StructField(field) => &field.value,
        EntryExpr::MapEntry(entry) => &entry.value,
    }
}

/// The literal's type name, without the leading dot that makes it absolute: there is no
/// container.
fn type_name(literal: &StructExpr) -> &str {
    let name = literal.type_name.as_str();
    name.strip_prefix('.').unwrap_or(name)
}

/// `Object`, or `Object.` followed by field names (the parser made them identifiers).
fn is_object_type(name: &str) -> bool {
    name.strip_prefix(OBJECT)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn check_json_patch_fields(
    program: &cel::Program,
    source: &str,
    literal: &StructExpr,
) -> Result<(), CompileError> {
    for entry in &literal.entries {
        if let EntryExpr::StructField(field) = &entry.expr {
            if !JSON_PATCH_FIELDS.contains(&field.field.as_str()) {
                let message = format!("undefined field '{}'", field.field);
                return Err(error_at(program, source, entry.id, &message));
            }
        }
    }
    Ok(())
}

fn undeclared(program: &cel::Program, source: &str, id: u64, name: &str) -> CompileError {
    let message = format!("undeclared reference to '{name}' (in container '')");
    error_at(program, source, id, &message)
}

/// An error at expression `id`, in cel-go's `ERROR: <input>:line:column: message` form,
/// with the line and a caret under the column, as the parser's errors have.
fn error_at(program: &cel::Program, source: &str, id: u64, message: &str) -> CompileError {
    let Some((offset, _)) = program.source_info().offset_for(id) else {
        return CompileError(format!("ERROR: <input>: {message}"));
    };
    let before = source.get(..offset as usize).unwrap_or(source);
    let line_number = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = source[line_start..].lines().next().unwrap_or_default();
    CompileError(format!(
        "ERROR: <input>:{line_number}:{column}: {message}\n| {line}\n| {:.>column$}",
        "^"
    ))
}

/// `Object` and its fields' types: a struct of that name with the fields given, so that the
/// result's type names can be checked against their field paths ([`crate::Program::eval`]).
struct ObjectType(Type);

impl StructType for ObjectType {
    fn get_type(&self) -> &Type {
        &self.0
    }

    fn new_value<'b, 'v>(
        &self,
        fields: BTreeMap<String, CowVal<'b, 'v>>,
    ) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        let mut object = CelStruct::new(self.0.name().to_string());
        for (name, value) in present_fields(fields) {
            object.add_field_value(name, CowVal::Owned(value));
        }
        Ok(Box::new(object))
    }
}

/// `JSONPatch`: a map of its fields, `op`, `path`, `from` (strings) and `value`.
struct JsonPatchType(Type);

impl StructType for JsonPatchType {
    fn get_type(&self) -> &Type {
        &self.0
    }

    fn new_value<'b, 'v>(
        &self,
        fields: BTreeMap<String, CowVal<'b, 'v>>,
    ) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        let mut map = HashMap::with_capacity(fields.len());
        for (name, value) in present_fields(fields) {
            if !JSON_PATCH_FIELDS.contains(&name.as_str()) {
                return Err(ExecutionError::NoSuchKey(
                    format!("no such field '{name}' in {JSON_PATCH}").into(),
                ));
            }
            if name != "value" && value.downcast_ref::<CelString>().is_none() {
                return Err(ExecutionError::UnexpectedType {
                    got: value.get_type().name().to_owned(),
                    want: format!("string for field {name} in {JSON_PATCH}"),
                });
            }
            map.insert(CelMapKey::from(name), value);
        }
        Ok(Box::new(CelMap::from(map)))
    }
}

/// The fields, leaving out those initialized with an empty optional
/// (`?field: optional.none()`), and those of a present one with the value it holds: the
/// interpreter hands struct types the optional itself.
fn present_fields<'b, 'v>(
    fields: BTreeMap<String, CowVal<'b, 'v>>,
) -> impl Iterator<Item = (String, Box<dyn Val + 'v>)> + 'b {
    fields
        .into_iter()
        .filter_map(|(name, value)| Some((name, present(value)?)))
}

/// `value`, or the value an optional holds, `None` if it holds none.
fn present<'v>(value: CowVal<'_, 'v>) -> Option<Box<dyn Val + 'v>> {
    match value.downcast_ref::<CelOptional>() {
        Some(optional) => optional.option().map(|v| v.clone_as_boxed()),
        None => Some(value.into_owned()),
    }
}

/// `jsonpatch.escapeKey`: `key` as a JSON pointer's reference token (RFC 6901).
fn escape_key(key: &CelString<'_>) -> CelString<'static> {
    key.replace('~', "~0").replace('/', "~1").into()
}

#[cfg(test)]
mod tests {
    use crate::Program;
    use serde_json::json;

    fn eval(source: &str, object: &serde_json::Value) -> serde_json::Value {
        Program::compile_mutation(source)
            .expect("compiles")
            .eval(&[
                ("object", object),
                ("oldObject", &json!({"spec": {"replicas": 1}})),
            ])
            .expect("evaluates")
    }

    #[test]
    fn object_literals_construct_an_apply_configuration() {
        let deployment = json!({"metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"replicas": 2, "template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "securityContext": {"runAsUser": 1000}}}}});
        let source = r#"Object{
            metadata: Object.metadata{labels: {"env": "prod", "team": object.metadata.labels.team}},
            spec: Object.spec{
                replicas: object.spec.replicas + oldObject.spec.replicas,
                template: Object.spec.template{spec: Object.spec.template.spec{
                    containers: [Object.spec.template.spec.containers{name: "sidecar", image: "envoy"}]
                        + object.spec.template.spec.containers.map(c,
                            Object.spec.template.spec.containers{name: c.name, image: c.image + ":v2"}),
                    securityContext: object.spec.template.spec.securityContext,
                    ?nodeName: object.spec.template.spec.?nodeName,
                    ?hostname: optional.of("h"),
                }},
            },
        }"#;
        assert_eq!(
            eval(source, &deployment),
            json!({
                "metadata": {"labels": {"env": "prod", "team": "a"}},
                "spec": {"replicas": 3, "template": {"spec": {
                    "containers": [
                        {"name": "sidecar", "image": "envoy"},
                        {"name": "c", "image": "busybox:v2"},
                    ],
                    "securityContext": {"runAsUser": 1000},
                    "hostname": "h",
                }}},
            })
        );
        assert_eq!(
            eval(".Object{}", &deployment),
            json!({}),
            "an absolute name"
        );
    }

    #[test]
    fn json_patch_literals_construct_operations() {
        let pod = json!({"metadata": {"name": "web"}});
        let source = r#"[
            JSONPatch{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey("example.com/owner~1"),
                value: object.metadata.name},
            JSONPatch{op: "replace", path: "/spec/replicas", value: {"n": [3]}},
            JSONPatch{op: "remove", path: "/spec/paused"},
            JSONPatch{op: "copy", from: "/a", path: "/b"},
        ]"#;
        assert_eq!(
            eval(source, &pod),
            json!([
                {"op": "add", "path": "/metadata/annotations/example.com~1owner~01", "value": "web"},
                {"op": "replace", "path": "/spec/replicas", "value": {"n": [3]}},
                {"op": "remove", "path": "/spec/paused"},
                {"op": "copy", "from": "/a", "path": "/b"},
            ])
        );
        let escaped = Program::compile_mutation(r#"jsonpatch.escapeKey("a/b~c")"#)
            .expect("compiles")
            .eval_string::<&serde_json::Value>(&[]);
        assert_eq!(escaped.as_deref(), Ok("a~1b~0c"));
    }

    /// The error is at the field's colon, as cel-go's is.
    #[test]
    fn a_json_patch_has_its_fields_only() {
        let error = Program::compile_mutation(r#"[JSONPatch{op: "add", path: "/x", valeu: 1}]"#)
            .expect_err("no such field");
        assert_eq!(
            error.to_string(),
            "compilation failed: ERROR: <input>:1:40: undefined field 'valeu'\n\
             | [JSONPatch{op: \"add\", path: \"/x\", valeu: 1}]\n\
             | .......................................^"
        );
        let error = Program::compile_mutation(r#"JSONPatch{op: 1, path: "/x"}"#)
            .expect("compiles")
            .eval::<&serde_json::Value>(&[])
            .expect_err("op is a string");
        assert!(
            error
                .to_string()
                .contains("want 'string for field op in JSONPatch'"),
            "{error}"
        );
    }

    #[test]
    fn object_type_names_follow_their_field_paths() {
        let failure = |source: &str| {
            Program::compile_mutation(source)
                .expect("compiles")
                .eval(&[("object", &json!({}))])
                .expect_err("a mismatch")
                .to_string()
        };
        assert_eq!(
            failure("Object{spec: Object.metadata{}}"),
            "type mismatch: unexpected type name \"Object.metadata\", expected \"Object.spec\", which matches field name path from root Object type"
        );
        // List items and map values are named for the list's or map's field; the path goes
        // on from where the root's name says it starts.
        let in_list = failure(
            "Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: [Object.spec.template.spec.container{name: 'x'}]}}}",
        );
        assert!(
            in_list.contains(r#"expected "Object.spec.template.spec.containers""#),
            "{in_list}"
        );
        let in_map = failure("Object{metadata: Object.metadata{annotations: {'a': Object{}}}}");
        assert!(
            in_map.contains(r#"expected "Object.metadata.annotations""#),
            "{in_map}"
        );
        // Objects read as the fields given; inside a JSON patch's value nothing is checked.
        assert_eq!(
            eval(
                "Object{spec: Object.spec{replicas: 2}}.spec.replicas",
                &json!({})
            ),
            json!(2)
        );
        assert_eq!(
            eval(
                "[JSONPatch{op: 'add', path: '/spec', value: Object.x{y: Object.z{}}}]",
                &json!({})
            ),
            json!([{"op": "add", "path": "/spec", "value": {"y": {}}}])
        );
    }

    #[test]
    fn other_struct_types_do_not_compile() {
        let error = Program::compile_mutation("Foo{a: 1}").expect_err("undeclared");
        assert_eq!(
            error.to_string(),
            "compilation failed: ERROR: <input>:1:4: undeclared reference to 'Foo' (in container '')\n\
             | Foo{a: 1}\n\
             | ...^"
        );
        for source in [
            "[1].map(x, Object{a: Objects{}})",
            "{'a': Object.spec{}, 'b': [ObjectX{}]}",
            "Object{a: has(object.a) ? 1 : JSONPatches{}}",
            "object.a.startsWith(my.Type{}.x)",
        ] {
            let error = Program::compile_mutation(source).expect_err(source);
            assert!(
                error.to_string().contains("undeclared reference to"),
                "{source}: {error}"
            );
        }
    }

    /// Validation programs construct nothing: `Object{}` does not compile, nor does
    /// `jsonpatch.escapeKey` run.
    #[test]
    fn other_programs_declare_no_struct_type() {
        let error = Program::compile("object.x == Object{}").expect_err("undeclared");
        assert!(
            error.to_string().starts_with(
                "compilation failed: ERROR: <input>:1:19: undeclared reference to 'Object'"
            ),
            "{error}"
        );
        let escaped = Program::compile("jsonpatch.escapeKey('a')")
            .expect("compiles")
            .eval::<&serde_json::Value>(&[]);
        assert!(escaped.is_err(), "{escaped:?}");
    }
}
