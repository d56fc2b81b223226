//! CEL as Kubernetes uses it in ValidatingAdmissionPolicies and webhook match conditions:
//! the [`cel`] crate's standard library with cel-go's strings and lists extensions, and the
//! part of Kubernetes' own libraries ferry has so far (`isSorted`, `sum` on lists).
//!
//! Expressions are compiled once ([`Program::compile`], errors in cel-go's
//! `ERROR: <input>:1:13: …` form) and evaluated against JSON variables ([`Program::eval`]):
//! `object`, `oldObject`, `request`, `params`, `namespaceObject`, `variables`.

use std::sync::{Arc, LazyLock};

use cel::extractors::This;
use cel::{Context, Env, Value};

/// The environment every program is compiled in.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // Both extensions declare overloads the standard library does not have: they cannot
    // conflict, and a failure here is a bug in this list.
    cel::extensions::strings(&mut env).expect("the strings extension");
    cel::extensions::lists(&mut env).expect("the lists extension");
    Arc::new(env)
});

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compilation failed: {0}")]
pub struct CompileError(String);

/// An evaluation that failed, or gave a value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(String);

/// A compiled expression.
pub struct Program {
    source: String,
    program: cel::Program,
    /// The variables the expression names: only those are converted and bound.
    variables: Vec<String>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Program").field(&self.source).finish()
    }
}

impl Program {
    /// Compiles `source`.
    pub fn compile(source: &str) -> Result<Program, CompileError> {
        let program = ENV
            .compile(source)
            .map_err(|e| CompileError(e.to_string()))?;
        let variables = program
            .references()
            .variables()
            .into_iter()
            .map(String::from)
            .collect();
        Ok(Program {
            source: source.to_string(),
            program,
            variables,
        })
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
    pub fn eval(
        &self,
        variables: &[(&str, &serde_json::Value)],
    ) -> Result<serde_json::Value, EvalError> {
        let value = self.execute(variables)?;
        value
            .json()
            .map_err(|e| EvalError(format!("the result cannot be represented: {e}")))
    }

    /// Evaluates an expression that must give a bool.
    pub fn eval_bool(&self, variables: &[(&str, &serde_json::Value)]) -> Result<bool, EvalError> {
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
    pub fn eval_string(
        &self,
        variables: &[(&str, &serde_json::Value)],
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

    fn execute(&self, variables: &[(&str, &serde_json::Value)]) -> Result<Value, EvalError> {
        let mut context = Context::with_env(ENV.clone());
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
            context.add_variable_from_value(*name, to_cel(value));
        }
        add_kubernetes_functions(&mut context);
        self.program.execute(&context).map_err(|e| failed(&e))
    }
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

/// Kubernetes' lists library: `isSorted()` and `sum()`.
fn add_kubernetes_functions(context: &mut Context<'_, '_>) {
    // Neither name is declared by the environment, so neither can conflict.
    let _ = context.add_function("isSorted", |This(list): This<Arc<Vec<Value>>>| {
        list.windows(2)
            .all(|pair| pair[0].partial_cmp(&pair[1]).is_some_and(|o| o.is_le()))
    });
    let _ = context.add_function("sum", |This(list): This<Arc<Vec<Value>>>| -> Value {
        if list.iter().all(|v| matches!(v, Value::Int(_))) {
            let total: i64 = list
                .iter()
                .map(|v| if let Value::Int(i) = v { *i } else { 0 })
                .sum();
            return Value::Int(total);
        }
        let total: f64 = list
            .iter()
            .map(|v| match v {
                Value::Int(i) => *i as f64,
                Value::UInt(u) => *u as f64,
                Value::Float(f) => *f,
                _ => 0.0,
            })
            .sum();
        Value::Float(total)
    });
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
