//! CEL as Kubernetes uses it in ValidatingAdmissionPolicies, MutatingAdmissionPolicies,
//! webhook match conditions and CRD `x-kubernetes-validations`: the [`cel`] crate's standard
//! library with its optional values (`optional.of`, `hasValue`, `orValue`, the `a.?b` and
//! `a[?b]` syntax, as upstream's environments enable them), cel-go's strings, lists and sets
//! extensions, and Kubernetes' own libraries (k8s.io/apiserver/pkg/cel/library):
//!
//! - lists: `isSorted()`, `sum()`, `min()`, `max()`, `indexOf(x)`, `lastIndexOf(x)`,
//!   `includes(x)`;
//! - regex: `'abc 123'.find('[0-9]+')`, `findAll(regex)`, `findAll(regex, limit)`;
//! - URLs: `url('https://example.com:80/').getPort()`, `isURL`, `getScheme`, `getHost`,
//!   `getHostname`, `getEscapedPath`, `getQuery`;
//! - IPs and CIDRs: `ip('10.0.0.1').family()`, `isIP`, `ip.isCanonical`,
//!   `cidr('10.0.0.0/8').containsIP('10.1.2.3')`, `isCIDR`, `masked()`, `prefixLength()`, …;
//! - quantities: `quantity('1.5G').isGreaterThan(quantity('200M'))`, `isQuantity`,
//!   `asInteger()`, `add`, `sub`, `compareTo`, …;
//! - named formats: `format.dns1123Label().validate(name)`, `format.named('uuid')`, …;
//! - sets: `sets.contains(a, b)`, `sets.equivalent(a, b)`, `sets.intersects(a, b)`;
//! - the authorizer, `authorizer.group('apps').resource('deployments').check('create')
//!   .allowed()` and `authorizer.requestResource`, bound by the caller to an [`Authorizer`]
//!   ([`Variable::Authorizer`]).
//!
//! As in upstream's base environment, every program has all of them, CRD rules included:
//! the authorizer's functions only apply to an `authorizer` variable, which only admission
//! callers bind.
//!
//! Expressions are compiled once ([`Program::compile`], errors in cel-go's
//! `ERROR: <input>:1:13: …` form) and evaluated against JSON variables ([`Program::eval`]):
//! `object`, `oldObject`, `request`, `params`, `namespaceObject`, `variables`, or `self` and
//! `oldSelf` (bound as an optional, [`Variable::Optional`], for `optionalOldSelf` rules), and
//! `authorizer`. Struct literals do not compile in these programs: no struct type is
//! declared. A program whose result is one of the libraries' values (a quantity, an IP, …)
//! fails to evaluate: results are JSON.
//!
//! Mutation programs, the expressions of MutatingAdmissionPolicies
//! ([`Program::compile_mutation`]), also construct the patch they give with struct
//! literals: `Object{spec: Object.spec{replicas: 3}}`, evaluated as the JSON object
//! `{"spec": {"replicas": 3}}` for an apply configuration, or a list of
//! `JSONPatch{op: "add", path: "/spec/replicas", value: 3}` as a list of JSON patch
//! operations, and have `jsonpatch.escapeKey`. See the `mutation` module.
//!
//! Static cost estimates for CRD rules are the [`cost`] module's.

pub mod cost;
mod library;
mod mutation;

pub use library::authz::{
    Authorizer, AuthorizerBinding, AuthzCheck, AuthzDecision, AuthzTarget, AuthzUser, Decision,
    ResourceAttributes,
};

use std::sync::{Arc, LazyLock};

use cel::objects::OptionalValue;
use cel::{Context, Env, Value};

/// The environment programs are compiled and run in, mutation programs' aside.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(base_env()));

/// The standard library with the extensions and Kubernetes' libraries: the environment of
/// every program, which a mutation program's adds its struct types to.
fn base_env() -> Env {
    let mut env = Env::stdlib();
    // The extensions and libraries declare overloads the standard library does not have
    // (other names, or other argument types): they cannot conflict, and a failure here is a
    // bug in these lists, which every test meets.
    cel::extensions::strings(&mut env).expect("the strings extension");
    cel::extensions::lists(&mut env).expect("the lists extension");
    library::register(&mut env).expect("Kubernetes' CEL libraries");
    env
}

/// A value bound to a variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variable<'a> {
    /// JSON, as it is.
    Json(&'a serde_json::Value),
    /// A CEL optional: `optional.of(value)`, or `optional.none()` when absent.
    Optional(Option<&'a serde_json::Value>),
    /// Kubernetes' authorizer (admission policies' `authorizer`); bound under the name `n`,
    /// it also binds `n.requestResource` when the binding has the request's resource.
    Authorizer(&'a AuthorizerBinding),
}

impl<'a> From<&'a serde_json::Value> for Variable<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        Variable::Json(value)
    }
}

impl Variable<'_> {
    /// Binds the variable as `name` in `context`.
    fn bind(self, context: &mut Context<'_, '_>, name: &str) {
        let value = match self {
            Variable::Json(value) => to_cel(value),
            Variable::Optional(value) => {
                let optional = match value {
                    Some(value) => OptionalValue::of(to_cel(value)),
                    None => OptionalValue::none(),
                };
                Value::Opaque(Arc::new(optional))
            }
            Variable::Authorizer(binding) => {
                for (name, value) in binding.values(name) {
                    context.add_variable_as_val(name, value);
                }
                return;
            }
        };
        context.add_variable_from_value(name, value);
    }
}

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compilation failed: {0}")]
pub struct CompileError(pub(crate) String);

/// An evaluation that failed, or gave a value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(String);

/// A compiled expression.
pub struct Program {
    source: String,
    program: cel::Program,
    /// The environment the program runs in: the shared [`ENV`], or a mutation program's own.
    env: Arc<Env>,
    /// The variables the expression names: only those are converted and bound.
    variables: Vec<String>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Program").field(&self.source).finish()
    }
}

impl Program {
    /// Compiles `source`. A struct literal does not compile: no struct type is declared.
    pub fn compile(source: &str) -> Result<Program, CompileError> {
        let program = parse(source)?;
        mutation::reject_struct_literals(&program, source)?;
        Ok(Program::new(source, program, ENV.clone()))
    }

    /// Compiles `source`, a MutatingAdmissionPolicy's mutation: its struct literals of type
    /// `Object` or `Object.<field>…` construct JSON objects of the fields given (an apply
    /// configuration), those of type `JSONPatch` JSON patch operations (fields `op`,
    /// `path`, `from`, `value`), and `jsonpatch.escapeKey(key)` escapes a key for a path.
    /// Any other struct type, or field of a `JSONPatch`, does not compile.
    pub fn compile_mutation(source: &str) -> Result<Program, CompileError> {
        // Parsing does not depend on the types declared: the literals are known from the
        // parsed expression, and declared in the program's own environment.
        let program = parse(source)?;
        let mut env = base_env();
        mutation::declare(&mut env, &program, source)?;
        Ok(Program::new(source, program, Arc::new(env)))
    }

    fn new(source: &str, program: cel::Program, env: Arc<Env>) -> Program {
        let variables = program
            .references()
            .variables()
            .into_iter()
            .map(String::from)
            .collect();
        Program {
            source: source.to_string(),
            program,
            env,
            variables,
        }
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression names the variable `name` (comprehension variables count too):
    /// a CRD validation rule naming `oldSelf` is a transition rule.
    pub fn references(&self, name: &str) -> bool {
        self.variables.iter().any(|v| v == name)
    }

    /// Evaluates the expression with `variables` bound; the result as JSON.
    pub fn eval<'v, V: Into<Variable<'v>> + Copy>(
        &self,
        variables: &[(&str, V)],
    ) -> Result<serde_json::Value, EvalError> {
        let value = self.execute(variables)?;
        let root = match &value {
            Value::Struct(object) => Some(object.name().to_string()),
            _ => None,
        };
        let mut mismatches = Vec::new();
        let json = to_json(&value, root.as_deref(), &mut mismatches)?;
        if !mismatches.is_empty() {
            return Err(EvalError(format!(
                "type mismatch: {}",
                mismatches.join("\n")
            )));
        }
        Ok(json)
    }

    /// Evaluates an expression that must give a bool.
    pub fn eval_bool<'v, V: Into<Variable<'v>> + Copy>(
        &self,
        variables: &[(&str, V)],
    ) -> Result<bool, EvalError> {
        match self.execute(variables)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!(
                "expression '{}' resulted in error: expected a bool, got {:?}",
                self.source,
                other.type_of()
            ))),
        }
    }

    /// Evaluates an expression that must give a string.
    pub fn eval_string<'v, V: Into<Variable<'v>> + Copy>(
        &self,
        variables: &[(&str, V)],
    ) -> Result<String, EvalError> {
        match self.execute(variables)? {
            Value::String(s) => Ok(s.to_string()),
            other => Err(EvalError(format!(
                "expression '{}' resulted in error: expected a string, got {:?}",
                self.source,
                other.type_of()
            ))),
        }
    }

    fn execute<'v, V: Into<Variable<'v>> + Copy>(
        &self,
        variables: &[(&str, V)],
    ) -> Result<Value, EvalError> {
        let mut context = Context::with_env(self.env.clone());
        let failed = |e: &dyn std::fmt::Display| {
            EvalError(format!(
                "expression '{}' resulted in error: {e}",
                self.source
            ))
        };
        // Converting a variable costs as much as the object is large: only those named.
        let named = variables
            .iter()
            .filter(|(name, _)| self.variables.iter().any(|v| v == name));
        for (name, value) in named {
            (*value).into().bind(&mut context, name);
        }
        self.program.execute(&context).map_err(|e| failed(&e))
    }
}

/// Parses `source` with the environment's macros and optional syntax (which the types it
/// declares do not change).
fn parse(source: &str) -> Result<cel::Program, CompileError> {
    ENV.compile(source).map_err(|e| CompileError(e.to_string()))
}

/// `value` as JSON; a struct (a mutation's `Object…{}`) as an object of its fields. Inside a
/// struct result (an apply configuration) each struct must be named for its field path from
/// the root's name, `expected` (upstream's `CheckTypeNamesMatchFieldPathNames`; lists and maps
/// pass their path to their items): the mismatches, in upstream's words, go to `mismatches`.
fn to_json(
    value: &Value,
    expected: Option<&str>,
    mismatches: &mut Vec<String>,
) -> Result<serde_json::Value, EvalError> {
    let unrepresentable =
        |e: &dyn std::fmt::Display| EvalError(format!("the result cannot be represented: {e}"));
    Ok(match value {
        Value::Struct(object) => {
            if let Some(expected) = expected.filter(|e| *e != object.name()) {
                mismatches.push(format!(
                    "unexpected type name {:?}, expected {expected:?}, which matches field name path from root Object type",
                    object.name()
                ));
            }
            let mut fields = serde_json::Map::new();
            for (name, field) in object.field_values() {
                let field = Value::try_from(field.as_ref()).map_err(|e| unrepresentable(&e))?;
                let path = expected.map(|e| format!("{e}.{name}"));
                let json = to_json(&field, path.as_deref(), mismatches)?;
                fields.insert(name, json);
            }
            serde_json::Value::Object(fields)
        }
        Value::List(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|item| to_json(item, expected, mismatches))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(map) => serde_json::Value::Object(
            map.map
                .iter()
                .map(|(k, v)| Ok((k.to_string(), to_json(v, expected, mismatches)?)))
                .collect::<Result<_, EvalError>>()?,
        ),
        other => other.json().map_err(|e| unrepresentable(&e))?,
    })
}

/// `value` as a CEL value, converted directly (the `cel` crate's serde path costs about twice
/// as much): numbers as `int` when they are integers, as upstream's JSON decoding gives them.
fn to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(to_cel).collect()))
        }
        serde_json::Value::Object(fields) => {
            let map: std::collections::HashMap<cel::objects::Key, Value> = fields
                .iter()
                .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

/// Helpers of the libraries' tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::{EvalError, Program};

    /// `source`, an expression without variables, evaluated to a bool.
    pub(crate) fn eval(source: &str) -> Result<bool, EvalError> {
        Program::compile(source)
            .expect("compiles")
            .eval_bool::<&serde_json::Value>(&[])
    }

    /// The error `source` fails with.
    pub(crate) fn eval_err(source: &str) -> String {
        match eval(source) {
            Ok(value) => panic!("{source} gave {value}, not an error"),
            Err(error) => error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_see_the_json_variables() {
        let deployment = json!({"metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"replicas": 6, "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        let eval = |source: &str| {
            Program::compile(source)
                .expect("compiles")
                .eval_bool(&[("object", &deployment)])
        };
        assert_eq!(eval("object.spec.replicas <= 5"), Ok(false));
        assert_eq!(eval("object.metadata.name.startsWith('we')"), Ok(true));
        assert_eq!(eval("has(object.spec.paused)"), Ok(false));
        assert_eq!(eval("'team' in object.metadata.labels"), Ok(true));
        assert_eq!(
            eval("object.spec.template.spec.containers.all(c, c.image.matches('^busybox'))"),
            Ok(true)
        );
        assert_eq!(eval("object.metadata.name.upperAscii() == 'WEB'"), Ok(true));
        assert_eq!(
            eval("[1, 2, 2].isSorted() && [3, 1].isSorted() == false"),
            Ok(true)
        );
        assert_eq!(eval("[1, 2, 3].sum() == 6"), Ok(true));
        assert_eq!(
            eval("object.spec.replicas == 6 && object.spec.replicas > 5.5"),
            Ok(true)
        );
        let missing = eval("object.spec.strategy.type == 'Recreate'").expect_err("no such key");
        assert!(
            missing.to_string().contains("No such key: strategy"),
            "{missing}"
        );
        let message = Program::compile("'replicas ' + string(object.spec.replicas) + ' > 5'")
            .expect("compiles")
            .eval_string(&[("object", &deployment)]);
        assert_eq!(message.as_deref(), Ok("replicas 6 > 5"));
    }

    #[test]
    fn references_name_the_variables_used() {
        let program = Program::compile("self.x == oldSelf.x").expect("compiles");
        assert!(program.references("oldSelf"));
        assert!(!Program::compile("self.x > 0")
            .expect("compiles")
            .references("oldSelf"));
    }

    #[test]
    fn optionals_bind_and_parse() {
        let old = json!(3);
        let new = json!(5);
        let eval = |source: &str, old_self: Option<&serde_json::Value>| {
            Program::compile(source).expect("compiles").eval_bool(&[
                ("self", Variable::Json(&new)),
                ("oldSelf", Variable::Optional(old_self)),
            ])
        };
        let cases = [
            ("!oldSelf.hasValue() || self >= oldSelf.value()", None, true),
            (
                "!oldSelf.hasValue() || self >= oldSelf.value()",
                Some(&old),
                true,
            ),
            ("oldSelf.hasValue()", None, false),
            ("oldSelf.orValue(7) <= self", None, false),
            ("oldSelf.orValue(7) <= self", Some(&old), true),
            ("oldSelf == optional.none()", None, true),
            ("oldSelf == optional.of(3)", Some(&old), true),
        ];
        for (source, old_self, want) in cases {
            assert_eq!(
                eval(source, old_self),
                Ok(want),
                "{source} with {old_self:?}"
            );
        }

        let object = json!({"spec": {"a": 1}});
        let eval = |source: &str| {
            Program::compile(source)
                .expect("compiles")
                .eval_bool(&[("self", &object)])
        };
        assert_eq!(eval("self.?spec.?b.orValue(2) == 2"), Ok(true));
        assert_eq!(eval("self.?spec.a.orValue(2) == 1"), Ok(true));
        assert_eq!(eval("self.spec[?'a'].hasValue()"), Ok(true));
        assert_eq!(eval("[?self.?spec.?b, 1].size() == 1"), Ok(true));
    }

    #[test]
    fn kubernetes_libraries_apply_to_json_values() {
        let object = json!({"spec": {"memory": "512Mi", "podCIDR": "10.0.0.0/24",
            "endpoint": "https://example.com:8443/api", "name": "web-1"}});
        let eval = |source: &str| {
            Program::compile(source)
                .expect("compiles")
                .eval_bool(&[("self", &object)])
        };
        let cases = [
            "isQuantity(self.spec.memory) && quantity(self.spec.memory).isLessThan(quantity('1Gi'))",
            "cidr(self.spec.podCIDR).containsIP('10.0.0.7')",
            "url(self.spec.endpoint).getPort() == '8443'",
            "!format.dns1123Label().validate(self.spec.name).hasValue()",
            "self.spec.name.find('[0-9]+') == '1'",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
        let patch = Program::compile_mutation(
            "Object{spec: Object.spec{replicas: quantity('2k').asInteger()}}",
        )
        .expect("compiles")
        .eval::<&serde_json::Value>(&[]);
        assert_eq!(patch, Ok(json!({"spec": {"replicas": 2000}})));
    }

    #[test]
    fn a_library_value_is_no_result() {
        let error = Program::compile("quantity('1')")
            .expect("compiles")
            .eval::<&serde_json::Value>(&[])
            .expect_err("a quantity is not JSON");
        assert!(error.to_string().contains("quantity('1')"), "{error}");
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = Program::compile("object.spec.(").expect_err("syntax");
        assert!(
            error
                .to_string()
                .starts_with("compilation failed: ERROR: <input>:1:13: Syntax error"),
            "{error}"
        );
    }
}
