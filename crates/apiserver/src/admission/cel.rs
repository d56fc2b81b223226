//! CEL in admission ([`ferry_cel`]): programs compiled once per expression text and kept, the
//! variables every expression sees, and match conditions.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_cel::{CompileError, Program, Variable};
use serde_json::Value;

use super::Attributes;

/// Programs kept at most; past it the cache starts over (policies rarely change).
const CACHED_PROGRAMS: usize = 4096;

/// Compiled programs by expression text.
pub struct Programs {
    cache: parking_lot::Mutex<HashMap<String, Arc<Program>>>,
    /// How a text is compiled: [`Program::compile`], or [`Program::compile_mutation`].
    compile: fn(&str) -> Result<Program, CompileError>,
}

impl Default for Programs {
    fn default() -> Self {
        Programs {
            cache: Default::default(),
            compile: Program::compile,
        }
    }
}

impl Programs {
    /// Programs of MutatingAdmissionPolicy mutations, whose struct literals build the patch.
    pub fn mutations() -> Programs {
        Programs {
            cache: Default::default(),
            compile: Program::compile_mutation,
        }
    }

    /// The program of `source`, compiled on first use.
    pub fn get(&self, source: &str) -> Result<Arc<Program>, CompileError> {
        if let Some(program) = self.cache.lock().get(source) {
            return Ok(program.clone());
        }
        let program = Arc::new((self.compile)(source)?);
        let mut cache = self.cache.lock();
        if cache.len() >= CACHED_PROGRAMS {
            cache.clear();
        }
        cache.insert(source.to_string(), program.clone());
        Ok(program)
    }
}

/// `object`, `oldObject` and `request`, as every admission expression sees them.
pub struct RequestVariables {
    /// The object after the request (`null` for a delete).
    pub object: Value,
    /// The object before it (`null` for a create).
    pub old_object: Value,
    /// The `AdmissionRequest`.
    pub request: Value,
    /// `authorizer`, when the request has a user and the server an authorizer.
    pub authorizer: Option<ferry_cel::AuthorizerBinding>,
}

impl RequestVariables {
    /// The variables of a request about `object`.
    pub fn of(attributes: &Attributes<'_>, object: &Value) -> RequestVariables {
        let (object_after, old_object) = super::request::new_and_old(attributes, object);
        let name = crate::object::meta_str(object, "name").unwrap_or_default();
        RequestVariables {
            authorizer: super::authorizer::binding(attributes, attributes.namespace(object), name),
            object: object_after,
            old_object,
            request: super::request::admission_request(attributes, object, false),
        }
    }

    /// The bindings, by CEL name.
    pub fn bindings(&self) -> Vec<(&'static str, Variable<'_>)> {
        let mut bindings = vec![
            ("object", Variable::Json(&self.object)),
            ("oldObject", Variable::Json(&self.old_object)),
            ("request", Variable::Json(&self.request)),
        ];
        if let Some(authorizer) = &self.authorizer {
            bindings.push(("authorizer", Variable::Authorizer(authorizer)));
        }
        bindings
    }
}

/// What match conditions decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched {
    /// All are true.
    Yes,
    /// One is false.
    No,
    /// None is false, and one could not be evaluated.
    Error(String),
}

/// Evaluates `conditions` (name, expression) in order, as upstream: one false is no match,
/// whatever errors others give; otherwise an error is an error.
pub fn match_conditions(
    programs: &Programs,
    conditions: &[(String, String)],
    variables: &[(&str, Variable<'_>)],
) -> Matched {
    let mut error = None;
    for (name, expression) in conditions {
        let outcome = programs
            .get(expression)
            .map_err(|e| e.to_string())
            .and_then(|program| program.eval_bool(variables).map_err(|e| e.to_string()));
        match outcome {
            Ok(true) => {}
            Ok(false) => return Matched::No,
            Err(why) => {
                error.get_or_insert(format!("matchCondition {name:?}: {why}"));
            }
        }
    }
    error.map_or(Matched::Yes, Matched::Error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_false_condition_is_no_match_even_beside_an_error() {
        let programs = Programs::default();
        let object = json!({"metadata": {"name": "web", "labels": {"tier": "front"}}});
        let variables = [("object", Variable::Json(&object))];
        let condition = |name: &str, expression: &str| (name.to_string(), expression.to_string());
        let yes = [condition("labelled", "'tier' in object.metadata.labels")];
        assert_eq!(match_conditions(&programs, &yes, &variables), Matched::Yes);
        let broken = condition("broken", "object.spec.missing == 1");
        let no = [
            broken.clone(),
            condition("named", "object.metadata.name == 'db'"),
        ];
        assert_eq!(match_conditions(&programs, &no, &variables), Matched::No);
        match match_conditions(&programs, &[broken], &variables) {
            Matched::Error(why) => assert!(why.starts_with("matchCondition \"broken\": "), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(programs.cache.lock().len(), 3, "compiled once each");
    }
}
