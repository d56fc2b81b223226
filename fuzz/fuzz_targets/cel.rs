//! CEL expressions of admission policies, match conditions and CRD validation rules:
//! `ferry_cel::Program::compile` and `compile_mutation`, the static cost estimate
//! (`Program::estimate_cost`, which CRD rules must pass), and evaluation against a small
//! object.
//!
//! Input: the expression's text.
//!
//! Holds: no panic, no abort (stack overflow) in parsing, checking, estimating or evaluating;
//! a compiled program keeps its source.

#![no_main]

use std::sync::LazyLock;

use ferry_cel::cost::{Decl, Kind};
use ferry_cel::Program;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The object `self` and `object` are bound to.
static OBJECT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "image": "nginx:1.27", "ports": [80, 443], "ratio": 0.5,
                 "limit": "1.5Gi", "tags": ["a", "b"], "enabled": true},
    })
});

/// The schema of [`OBJECT`] as a CRD rule's `self` sees it.
static ROOT: LazyLock<Decl> = LazyLock::new(|| {
    let mut spec = Decl::scalar(Kind::Object, 16);
    for (name, decl) in [
        ("replicas", Decl::scalar(Kind::Int, 0)),
        ("image", Decl::scalar(Kind::String, 256)),
        ("ratio", Decl::scalar(Kind::Double, 0)),
        ("limit", Decl::scalar(Kind::Dyn, 64)),
        ("enabled", Decl::scalar(Kind::Bool, 0)),
        ("ports", list_of(Decl::scalar(Kind::Int, 0), 64)),
        ("tags", list_of(Decl::scalar(Kind::String, 63), 32)),
    ] {
        spec.fields.insert(name.to_string(), decl);
    }
    let mut labels = Decl::scalar(Kind::Map, 64);
    labels.elem = Some(Box::new(Decl::scalar(Kind::String, 63)));
    let mut metadata = Decl::scalar(Kind::Object, 8);
    metadata
        .fields
        .insert("name".into(), Decl::scalar(Kind::String, 253));
    metadata.fields.insert("labels".into(), labels);
    let mut root = Decl::scalar(Kind::Object, 8);
    root.fields.insert("spec".into(), spec);
    root.fields.insert("metadata".into(), metadata);
    root
});

fn list_of(elem: Decl, max: u64) -> Decl {
    let mut list = Decl::scalar(Kind::List, max);
    list.elem = Some(Box::new(elem));
    list
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let object: &Value = &OBJECT;
    let variables = [("self", object), ("object", object), ("oldObject", object)];
    if let Ok(program) = Program::compile(source) {
        assert_eq!(program.source(), source);
        let _ = program.references("oldSelf");
        let _ = program.estimate_cost(&ROOT, false);
        let _ = program.estimate_cost(&ROOT, true);
        let _ = program.eval(&variables);
    }
    if let Ok(program) = Program::compile_mutation(source) {
        let _ = program.eval(&variables);
    }
});
