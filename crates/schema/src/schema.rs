//! Parsing a CRD version's `openAPIV3Schema` (JSONSchemaProps as JSON) into [`Schema`], and
//! the checks upstream runs on it before accepting a CustomResourceDefinition: the structural
//! invariants (`pkg/apiserver/schema/validation.go`, `complete.go`) and the OpenAPI checks of
//! CRD validation (`ValidateCustomResourceDefinitionOpenAPISchema`).
//!
//! One type serves both the structural spine (properties, items, additionalProperties) and the
//! value validations under `allOf`/`anyOf`/`oneOf`/`not`: upstream keeps them apart
//! (`Structural` vs `NestedValueValidation`), here the checks below decide what each may hold.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::{Map, Value};

use crate::errors::{child, go_quote, go_value, key, FieldError};
use crate::formats;
use crate::rules::{CompiledRule, RuleSpec};

/// One node of a JSON schema.
#[derive(Debug, Default)]
pub(crate) struct Schema {
    pub type_: String,
    /// The format as written.
    pub format: String,
    /// The format upstream validates with: unsupported formats are dropped
    /// (`StripUnsupportedFormatsPostProcess`).
    pub checked_format: String,
    pub title: String,
    pub description: String,
    pub nullable: bool,
    pub default: Option<Value>,
    pub enum_: Option<Vec<Value>>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub pattern: Option<Pattern>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub unique_items: bool,
    pub multiple_of: Option<f64>,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub required: Vec<String>,
    pub properties: BTreeMap<String, Schema>,
    pub items: Option<Box<Schema>>,
    pub additional_properties: Option<AdditionalProperties>,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
    pub external_docs: bool,
    pub preserve_unknown_fields: Option<bool>,
    pub embedded_resource: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub rules: Vec<RuleSpec>,
    /// The rules compiled, in order (empty rules left out); filled by [`crate::rules::compile`].
    pub compiled: Vec<CompiledRule>,
    /// Whether this node or one below it on the spine has rules.
    pub has_rules: bool,
    /// JSON-schema keywords CRDs do not support that this node sets (`$ref`, `id`, …).
    pub unsupported: Vec<&'static str>,
    /// `items` given as an array of schemas.
    pub items_is_array: bool,
}

/// `additionalProperties`: a bool or a schema.
#[derive(Debug)]
pub(crate) enum AdditionalProperties {
    Allows(bool),
    Schema(Box<Schema>),
}

impl AdditionalProperties {
    /// The schema values are validated, pruned and defaulted with, if any.
    pub fn schema(&self) -> Option<&Schema> {
        match self {
            AdditionalProperties::Allows(_) => None,
            AdditionalProperties::Schema(s) => Some(s),
        }
    }
}

/// A `pattern`, compiled once.
#[derive(Debug)]
pub(crate) struct Pattern {
    pub source: String,
    pub regex: Result<Regex, String>,
}

impl Schema {
    /// The spine schema a field of an object value is checked against.
    pub fn field(&self, name: &str) -> Option<&Schema> {
        match self.properties.get(name) {
            Some(s) => Some(s),
            None => self
                .additional_properties
                .as_ref()
                .and_then(AdditionalProperties::schema),
        }
    }

    fn preserves_unknown_fields(&self) -> bool {
        self.preserve_unknown_fields == Some(true)
    }

    /// Whether the map's entries keep their identity across updates (`x-kubernetes-map-type`
    /// other than `atomic`), so that `oldSelf` can follow them.
    pub fn map_correlatable(&self) -> bool {
        self.map_type.as_deref() != Some("atomic")
    }
}

/// JSONSchemaProps keywords that CRDs reject, with the names upstream's messages use.
const UNSUPPORTED: [(&str, &str); 7] = [
    ("id", "id"),
    ("$schema", "$schema"),
    ("$ref", "$ref"),
    ("patternProperties", "patternProperties"),
    ("definitions", "definitions"),
    ("dependencies", "dependencies"),
    ("additionalItems", "additionalItems"),
];

/// A schema that must parse (the other modules' tests).
#[cfg(test)]
pub(crate) fn parsed(value: &Value) -> Schema {
    let mut errors = Vec::new();
    let schema = parse(value, "", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    schema
}

/// Decodes `value` into a [`Schema`]; problems decoding (a keyword of the wrong JSON type)
/// are pushed to `errors`, as the decoding of a CustomResourceDefinition would refuse them.
pub(crate) fn parse(value: &Value, path: &str, errors: &mut Vec<FieldError>) -> Schema {
    let mut s = Schema::default();
    let Some(fields) = value.as_object() else {
        errors.push(FieldError::invalid(
            path,
            go_value(value),
            "must be a JSON schema object",
        ));
        return s;
    };
    let mut p = Fields {
        fields,
        path,
        errors,
    };
    s.type_ = p.string("type");
    s.format = p.string("format");
    s.title = p.string("title");
    s.description = p.string("description");
    s.nullable = p.bool("nullable");
    s.default = fields.get("default").cloned();
    s.enum_ = p.array("enum").map(<[Value]>::to_vec);
    s.maximum = p.number("maximum");
    s.exclusive_maximum = p.bool("exclusiveMaximum");
    s.minimum = p.number("minimum");
    s.exclusive_minimum = p.bool("exclusiveMinimum");
    s.max_length = p.integer("maxLength");
    s.min_length = p.integer("minLength");
    s.pattern = p.optional_string("pattern").map(|source| Pattern {
        regex: Regex::new(&source).map_err(|e| e.to_string()),
        source,
    });
    s.max_items = p.integer("maxItems");
    s.min_items = p.integer("minItems");
    s.unique_items = p.bool("uniqueItems");
    s.multiple_of = p.number("multipleOf");
    s.max_properties = p.integer("maxProperties");
    s.min_properties = p.integer("minProperties");
    s.required = p.strings("required");
    s.external_docs = fields.contains_key("externalDocs");
    s.preserve_unknown_fields = p.optional_bool("x-kubernetes-preserve-unknown-fields");
    s.embedded_resource = p.bool("x-kubernetes-embedded-resource");
    s.int_or_string = p.bool("x-kubernetes-int-or-string");
    s.list_type = p.optional_string("x-kubernetes-list-type");
    s.list_map_keys = p.strings("x-kubernetes-list-map-keys");
    s.map_type = p.optional_string("x-kubernetes-map-type");
    for (keyword, name) in UNSUPPORTED {
        if fields.get(keyword).is_some_and(|v| !v.is_null()) {
            s.unsupported.push(name);
        }
    }
    if let Some(rules) = p.array("x-kubernetes-validations") {
        let rules_path = child(path, "x-kubernetes-validations");
        for (i, rule) in rules.iter().enumerate() {
            if let Some(rule) =
                RuleSpec::parse(rule, &crate::errors::index(&rules_path, i), p.errors)
            {
                s.rules.push(rule);
            }
        }
    }

    if let Some(properties) = p.object("properties") {
        for (name, sub) in properties {
            let sub_path = key(&child(path, "properties"), name);
            s.properties
                .insert(name.clone(), parse(sub, &sub_path, p.errors));
        }
    }
    match fields.get("items") {
        None | Some(Value::Null) => {}
        Some(Value::Array(_)) => s.items_is_array = true,
        Some(items) => s.items = Some(Box::new(parse(items, &child(path, "items"), p.errors))),
    }
    match fields.get("additionalProperties") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => s.additional_properties = Some(AdditionalProperties::Allows(*b)),
        Some(schema) => {
            let sub = parse(schema, &child(path, "additionalProperties"), p.errors);
            s.additional_properties = Some(AdditionalProperties::Schema(Box::new(sub)));
        }
    }
    for (keyword, list) in [
        ("allOf", &mut s.all_of),
        ("anyOf", &mut s.any_of),
        ("oneOf", &mut s.one_of),
    ] {
        if let Some(schemas) = p.array(keyword) {
            let base = child(path, keyword);
            for (i, sub) in schemas.iter().enumerate() {
                list.push(parse(sub, &crate::errors::index(&base, i), p.errors));
            }
        }
    }
    if let Some(not) = fields.get("not").filter(|v| !v.is_null()) {
        s.not = Some(Box::new(parse(not, &child(path, "not"), p.errors)));
    }
    s.checked_format = formats::checked_format(&s.type_, &s.format);
    s
}

/// Typed access to a JSONSchemaProps object's keywords.
struct Fields<'a> {
    fields: &'a Map<String, Value>,
    path: &'a str,
    errors: &'a mut Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn get(&mut self, name: &str, want: &str, ok: impl Fn(&Value) -> bool) -> Option<&'a Value> {
        let value = self.fields.get(name).filter(|v| !v.is_null())?;
        if ok(value) {
            return Some(value);
        }
        self.errors.push(FieldError::invalid(
            child(self.path, name),
            go_value(value),
            format!("must be {want}"),
        ));
        None
    }

    fn optional_string(&mut self, name: &str) -> Option<String> {
        self.get(name, "a string", Value::is_string)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn string(&mut self, name: &str) -> String {
        self.optional_string(name).unwrap_or_default()
    }

    fn optional_bool(&mut self, name: &str) -> Option<bool> {
        self.get(name, "a boolean", Value::is_boolean)
            .and_then(Value::as_bool)
    }

    fn bool(&mut self, name: &str) -> bool {
        self.optional_bool(name).unwrap_or(false)
    }

    fn number(&mut self, name: &str) -> Option<f64> {
        self.get(name, "a number", Value::is_number)
            .and_then(Value::as_f64)
    }

    fn integer(&mut self, name: &str) -> Option<i64> {
        self.get(name, "an integer", |v| {
            v.is_i64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        })
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    }

    fn array(&mut self, name: &str) -> Option<&'a [Value]> {
        self.get(name, "an array", Value::is_array)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
    }

    fn object(&mut self, name: &str) -> Option<&'a Map<String, Value>> {
        self.get(name, "an object", Value::is_object)
            .and_then(Value::as_object)
    }

    fn strings(&mut self, name: &str) -> Vec<String> {
        let Some(items) = self.array(name) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.errors.push(FieldError::invalid(
                    crate::errors::index(&child(self.path, name), i),
                    go_value(item),
                    "must be a string",
                )),
            }
        }
        out
    }
}

/// Where a spine node sits: the rules for `type` and `additionalProperties` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Upstream's `ValidateStructural`: the structural invariants and completeness of the spine,
/// sorted by message as upstream sorts them.
pub(crate) fn validate_structural(root: &Schema, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    structural_invariants(root, Level::Root, path, &mut errors);
    completeness_of_junctors(root, root, path, path, &mut errors);
    errors.sort_by_cached_key(ToString::to_string);
    errors
}

fn structural_invariants(s: &Schema, level: Level, path: &str, errors: &mut Vec<FieldError>) {
    if s.type_ == "array" && s.items.is_none() {
        errors.push(FieldError::required(
            child(path, "items"),
            "must be specified",
        ));
    }
    if let Some(items) = &s.items {
        structural_invariants(items, Level::Item, &child(path, "items"), errors);
    }
    for (name, property) in &s.properties {
        let sub = key(&child(path, "properties"), name);
        structural_invariants(property, Level::Field, &sub, errors);
    }
    if let Some(additional) = &s.additional_properties {
        if level == Level::Root {
            errors.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(schema) = additional.schema() {
            structural_invariants(
                schema,
                Level::Field,
                &child(path, "additionalProperties"),
                errors,
            );
        }
    }

    if s.int_or_string && s.preserves_unknown_fields() {
        errors.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.int_or_string && s.embedded_resource {
        errors.push(FieldError::invalid(
            child(path, "x-kubernetes-embedded-resource"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }

    let skip_any_of = is_int_or_string_pattern(&s.any_of);
    let skip_first_all_of_any_of = s
        .all_of
        .first()
        .is_some_and(|first| is_int_or_string_pattern(&first.any_of));
    junctors_structural(s, skip_any_of, skip_first_all_of_any_of, path, errors);

    let check_metadata = level == Level::Root || s.embedded_resource;
    if s.embedded_resource && s.type_ != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        errors.push(type_error(path, &s.type_, detail));
    } else if s.type_.is_empty() && !s.int_or_string && !s.preserves_unknown_fields() {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errors.push(FieldError::required(child(path, "type"), detail));
    }
    if s.embedded_resource && s.additional_properties.is_some() {
        errors.push(FieldError::forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root && !s.type_.is_empty() && s.type_ != "object" {
        errors.push(FieldError::invalid(
            child(path, "type"),
            go_quote(&s.type_),
            "must be object at the root",
        ));
    }
    for name in ["kind", "apiVersion"] {
        if let Some(property) = s.properties.get(name).filter(|_| check_metadata) {
            if property.type_ != "string" {
                errors.push(FieldError::invalid(
                    child(&key(&child(path, "properties"), name), "type"),
                    go_quote(&property.type_),
                    "must be string",
                ));
            }
        }
    }
    if let Some(metadata) = s.properties.get("metadata") {
        let metadata_path = key(&child(path, "properties"), "metadata");
        if check_metadata && metadata.type_ != "object" {
            errors.push(FieldError::invalid(
                child(&metadata_path, "type"),
                go_quote(&metadata.type_),
                "must be object",
            ));
        }
        if level == Level::Root && restricts_more_than_names(metadata) {
            errors.push(FieldError::forbidden(
                metadata_path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if s.embedded_resource && !s.preserves_unknown_fields() && s.properties.is_empty() {
        errors.push(FieldError::required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// `Required` when the type is empty, `Invalid` otherwise, at `path.type`.
fn type_error(path: &str, type_: &str, detail: &str) -> FieldError {
    if type_.is_empty() {
        FieldError::required(child(path, "type"), detail)
    } else {
        FieldError::invalid(child(path, "type"), go_quote(type_), detail)
    }
}

/// Whether a root `metadata` schema says more than the `name`/`generateName` restrictions
/// upstream allows there (its type and default are dropped before comparing).
fn restricts_more_than_names(m: &Schema) -> bool {
    let names_only = {
        let has_name = m.properties.contains_key("name");
        let has_generate_name = m.properties.contains_key("generateName");
        let n = m.properties.len();
        (has_name && has_generate_name && n == 2) || ((has_name || has_generate_name) && n == 1)
    };
    (!m.properties.is_empty() && !names_only)
        || m.items.is_some()
        || m.additional_properties.is_some()
        || !m.title.is_empty()
        || !m.description.is_empty()
        || m.nullable
        || has_value_validation(m)
        || has_extensions(m)
        || !m.rules.is_empty()
}

fn has_value_validation(s: &Schema) -> bool {
    !s.format.is_empty()
        || s.maximum.is_some()
        || s.exclusive_maximum
        || s.minimum.is_some()
        || s.exclusive_minimum
        || s.max_length.is_some()
        || s.min_length.is_some()
        || s.pattern.is_some()
        || s.max_items.is_some()
        || s.min_items.is_some()
        || s.unique_items
        || s.multiple_of.is_some()
        || s.max_properties.is_some()
        || s.min_properties.is_some()
        || !s.required.is_empty()
        || s.enum_.is_some()
        || !s.all_of.is_empty()
        || !s.any_of.is_empty()
        || !s.one_of.is_empty()
        || s.not.is_some()
}

fn has_extensions(s: &Schema) -> bool {
    s.preserves_unknown_fields()
        || s.embedded_resource
        || s.int_or_string
        || s.list_type.is_some()
        || !s.list_map_keys.is_empty()
        || s.map_type.is_some()
}

/// `anyOf: [{type: integer}, {type: string}]` and nothing else: the one place `type` may
/// appear in a junctor, for `x-kubernetes-int-or-string`.
fn is_int_or_string_pattern(any_of: &[Schema]) -> bool {
    let only_type = |s: &Schema, t: &str| {
        s.type_ == t
            && s.format.is_empty()
            && s.title.is_empty()
            && s.description.is_empty()
            && !s.nullable
            && s.default.is_none()
            && s.properties.is_empty()
            && s.items.is_none()
            && s.additional_properties.is_none()
            && !s.external_docs
            && !has_value_validation(s)
            && !has_extensions(s)
            && s.rules.is_empty()
    };
    any_of.len() == 2 && only_type(&any_of[0], "integer") && only_type(&any_of[1], "string")
}

/// `validateValueValidation`: the junctors of a node and the validity of its pattern.
fn junctors_structural(
    s: &Schema,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, sub) in s.any_of.iter().enumerate() {
            nested_structural(
                sub,
                false,
                false,
                &crate::errors::index(&child(path, "anyOf"), i),
                errors,
            );
        }
    }
    for (i, sub) in s.all_of.iter().enumerate() {
        let skip = skip_first_all_of_any_of && i == 0;
        nested_structural(
            sub,
            skip,
            false,
            &crate::errors::index(&child(path, "allOf"), i),
            errors,
        );
    }
    for (i, sub) in s.one_of.iter().enumerate() {
        nested_structural(
            sub,
            false,
            false,
            &crate::errors::index(&child(path, "oneOf"), i),
            errors,
        );
    }
    if let Some(not) = &s.not {
        nested_structural(not, false, false, &child(path, "not"), errors);
    }
    if let Some(Pattern {
        source,
        regex: Err(reason),
    }) = &s.pattern
    {
        errors.push(FieldError::invalid(
            child(path, "pattern"),
            go_quote(source),
            format!("must be a valid regular expression, but isn't: {reason}"),
        ));
    }
}

/// `validateNestedValueValidation`: what a schema under a junctor must leave to the spine.
fn nested_structural(
    v: &Schema,
    skip_any_of: bool,
    skip_all_of_any_of: bool,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    junctors_structural(v, skip_any_of, skip_all_of_any_of, path, errors);
    if let Some(items) = &v.items {
        nested_structural(items, false, false, &child(path, "items"), errors);
    }
    for (name, property) in &v.properties {
        nested_structural(
            property,
            false,
            false,
            &key(&child(path, "properties"), name),
            errors,
        );
    }
    let mut forbid = |name: &str, detail: &str| {
        errors.push(FieldError::forbidden(child(path, name), detail));
    };
    if !v.type_.is_empty() {
        forbid("type", "must be empty to be structural");
    }
    if v.additional_properties.is_some() {
        forbid("additionalProperties", "must be undefined to be structural");
    }
    if v.default.is_some() {
        forbid("default", "must be undefined to be structural");
    }
    if !v.title.is_empty() {
        forbid("title", "must be empty to be structural");
    }
    if !v.description.is_empty() {
        forbid("description", "must be empty to be structural");
    }
    if v.nullable {
        forbid("nullable", "must be false to be structural");
    }
    if v.external_docs {
        forbid("externalDocs", "must be undefined to be structural");
    }
    if v.preserves_unknown_fields() {
        forbid(
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        );
    }
    if v.embedded_resource {
        forbid(
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        );
    }
    if v.int_or_string {
        forbid(
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        );
    }
    if !v.list_map_keys.is_empty() {
        forbid(
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        );
    }
    if v.list_type.is_some() {
        forbid(
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        );
    }
    if v.map_type.is_some() {
        forbid(
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        );
    }
    if !v.rules.is_empty() {
        forbid("x-kubernetes-validations", "must be empty to be structural");
    }
    if v.properties.contains_key("metadata") {
        errors.push(FieldError::forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// `validateValueValidationCompleteness`: every field or item a junctor names must exist in
/// the spine at the same place.
fn completeness_of_junctors(
    v: &Schema,
    s: &Schema,
    s_path: &str,
    v_path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(not) = &v.not {
        nested_completeness(not, Some(s), s_path, &child(v_path, "not"), errors);
    }
    for (keyword, list) in [
        ("allOf", &v.all_of),
        ("anyOf", &v.any_of),
        ("oneOf", &v.one_of),
    ] {
        for (i, sub) in list.iter().enumerate() {
            let sub_path = crate::errors::index(&child(v_path, keyword), i);
            nested_completeness(sub, Some(s), s_path, &sub_path, errors);
        }
    }
}

fn nested_completeness(
    v: &Schema,
    s: Option<&Schema>,
    s_path: &str,
    v_path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errors.push(FieldError::required(
            s_path,
            format!("because it is defined in {v_path}"),
        ));
        return;
    };
    completeness_of_junctors(v, s, s_path, v_path, errors);
    if let Some(items) = &v.items {
        nested_completeness(
            items,
            s.items.as_deref(),
            &child(s_path, "items"),
            &child(v_path, "items"),
            errors,
        );
    }
    for (name, property) in &v.properties {
        let sub_s_path = key(&child(s_path, "properties"), name);
        let sub_v_path = key(&child(v_path, "properties"), name);
        match s.properties.get(name) {
            Some(spine) => {
                nested_completeness(property, Some(spine), &sub_s_path, &sub_v_path, errors)
            }
            None => errors.push(FieldError::required(
                sub_s_path,
                format!("because it is defined in {sub_v_path}"),
            )),
        }
    }
}

/// What [`validate_crd_schema`] carries down the tree (upstream's `specStandardValidator`).
#[derive(Debug, Clone, Default)]
struct Context {
    is_root: bool,
    inside_resource_meta: bool,
    /// `Some(reason)` where defaults are forbidden.
    forbidden_defaults: Option<String>,
}

const OPENAPI_V3_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
const SUPPORTED_RULE_REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// Upstream's `ValidateCustomResourceDefinitionOpenAPISchema` (the schema errors; CEL
/// compilation is [`crate::rules`]'s), plus `nullable cannot be true at the root`.
pub(crate) fn validate_crd_schema(root: &Schema, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if root.nullable {
        errors.push(FieldError::forbidden(
            child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let context = Context {
        is_root: true,
        ..Context::default()
    };
    crd_schema(root, path, &context, &mut errors);
    errors
}

fn crd_schema(s: &Schema, path: &str, ctx: &Context, errors: &mut Vec<FieldError>) {
    standard_checks(s, path, ctx, errors);
    if s.unique_items {
        errors.push(FieldError::forbidden(
            child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let nested = Context {
        is_root: false,
        ..ctx.clone()
    };
    if let Some(additional) = &s.additional_properties {
        let conflicts = !matches!(additional, AdditionalProperties::Allows(true));
        if !s.properties.is_empty() && conflicts {
            errors.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Some(schema) = additional.schema() {
            let mut sub = nested.clone();
            if ctx.inside_resource_meta {
                sub.forbidden_defaults =
                    Some("inside additionalProperties applying to object metadata".to_string());
            }
            crd_schema(schema, &child(path, "additionalProperties"), &sub, errors);
        }
    }
    for (name, property) in &s.properties {
        let mut sub = nested.clone();
        if (ctx.is_root || s.embedded_resource) && is_meta_field(name) {
            sub.inside_resource_meta = true;
            if ctx.is_root {
                sub.forbidden_defaults = Some(format!("in top-level {name}"));
            }
        }
        crd_schema(
            property,
            &key(&child(path, "properties"), name),
            &sub,
            errors,
        );
    }
    if let Some(not) = &s.not {
        crd_schema(not, &child(path, "not"), &nested, errors);
    }
    for (keyword, list) in [
        ("allOf", &s.all_of),
        ("oneOf", &s.one_of),
        ("anyOf", &s.any_of),
    ] {
        for (i, sub) in list.iter().enumerate() {
            crd_schema(
                sub,
                &crate::errors::index(&child(path, keyword), i),
                &nested,
                errors,
            );
        }
    }
    if let Some(items) = &s.items {
        crd_schema(items, &child(path, "items"), &nested, errors);
    }
    extension_checks(s, path, errors);
    list_checks(s, path, errors);
    rule_checks(s, path, errors);
}

pub(crate) fn is_meta_field(name: &str) -> bool {
    matches!(name, "metadata" | "kind" | "apiVersion")
}

/// `specStandardValidatorV3.validate`.
fn standard_checks(s: &Schema, path: &str, ctx: &Context, errors: &mut Vec<FieldError>) {
    if !s.type_.is_empty() && !OPENAPI_V3_TYPES.contains(&s.type_.as_str()) {
        let supported: Vec<String> = OPENAPI_V3_TYPES.iter().map(|t| t.to_string()).collect();
        errors.push(FieldError::not_supported(
            child(path, "type"),
            go_quote(&s.type_),
            &supported,
        ));
    }
    if let (Some(_), Some(reason)) = (&s.default, &ctx.forbidden_defaults) {
        errors.push(FieldError::forbidden(
            child(path, "default"),
            format!("must not be set {reason}"),
        ));
    }
    for name in &s.unsupported {
        errors.push(FieldError::forbidden(
            child(path, name),
            format!("{name} is not supported"),
        ));
    }
    if s.type_ == "null" {
        errors.push(FieldError::forbidden(
            child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if s.items_is_array {
        errors.push(FieldError::forbidden(
            child(path, "items"),
            "items must be a schema object and not an array",
        ));
    }
    if ctx.inside_resource_meta && s.embedded_resource {
        errors.push(FieldError::forbidden(
            child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
}

fn extension_checks(s: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    if s.preserve_unknown_fields == Some(false) {
        errors.push(FieldError::invalid(
            child(path, "x-kubernetes-preserve-unknown-fields"),
            "false",
            "must be true or undefined",
        ));
    }
    if let Some(map_type) = &s.map_type {
        if s.type_ != "object" {
            errors.push(type_error(
                path,
                &s.type_,
                "must be object if x-kubernetes-map-type is specified",
            ));
        }
        if map_type != "atomic" && map_type != "granular" {
            errors.push(FieldError::not_supported(
                child(path, "x-kubernetes-map-type"),
                go_quote(map_type),
                &["atomic".to_string(), "granular".to_string()],
            ));
        }
    }
}

fn list_checks(s: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    let items_path = child(path, "items");
    if let Some(list_type) = &s.list_type {
        if s.type_ != "array" {
            errors.push(type_error(
                path,
                &s.type_,
                "must be array if x-kubernetes-list-type is specified",
            ));
        } else if let (true, Some(items)) = (list_type == "set", &s.items) {
            let detail = "must be atomic as item of a list with x-kubernetes-list-type=set";
            // Upstream reports the items' list type as the value in both cases.
            let value = items
                .list_type
                .as_deref()
                .map_or_else(|| go_quote("null"), go_quote);
            match items.type_.as_str() {
                "array" if items.list_type.as_deref().is_some_and(|t| t != "atomic") => {
                    errors.push(FieldError::invalid(
                        child(&items_path, "x-kubernetes-list-type"),
                        value,
                        detail,
                    ));
                }
                "object" if items.map_type.as_deref() != Some("atomic") => {
                    errors.push(FieldError::invalid(
                        child(&items_path, "x-kubernetes-map-type"),
                        value,
                        detail,
                    ));
                }
                _ => {}
            }
        }
        if !matches!(list_type.as_str(), "atomic" | "set" | "map") {
            let supported = ["atomic", "set", "map"].map(String::from);
            errors.push(FieldError::not_supported(
                child(path, "x-kubernetes-list-type"),
                go_quote(list_type),
                &supported,
            ));
        }
    }
    if !s.list_map_keys.is_empty() {
        let detail = "must be map if x-kubernetes-list-map-keys is non-empty";
        match s.list_type.as_deref() {
            None => errors.push(FieldError::required(
                child(path, "x-kubernetes-list-type"),
                detail,
            )),
            Some("map") => {}
            Some(other) => errors.push(FieldError::invalid(
                child(path, "x-kubernetes-list-type"),
                go_quote(other),
                detail,
            )),
        }
    }
    if s.list_type.as_deref() == Some("map") {
        map_list_checks(s, path, &items_path, errors);
    }
    if let (Some(list_type @ ("set" | "map")), Some(items)) = (s.list_type.as_deref(), &s.items) {
        if items.nullable {
            errors.push(FieldError::forbidden(
                child(&items_path, "nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {list_type}"),
            ));
        }
        if list_type == "map" {
            for name in &s.list_map_keys {
                let Some(property) = items.properties.get(name) else {
                    continue;
                };
                let property_path = key(&child(&items_path, "properties"), name);
                if !items.required.contains(name) && property.default.is_none() {
                    errors.push(FieldError::required(
                        child(&property_path, "default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if property.nullable {
                    errors.push(FieldError::forbidden(
                        child(&property_path, "nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

fn map_list_checks(s: &Schema, path: &str, items_path: &str, errors: &mut Vec<FieldError>) {
    let keys_path = child(path, "x-kubernetes-list-map-keys");
    let keys_value = format!(
        "[]string{{{}}}",
        s.list_map_keys
            .iter()
            .map(|k| go_quote(k))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if s.list_map_keys.is_empty() {
        errors.push(FieldError::required(
            keys_path.clone(),
            "must not be empty if x-kubernetes-list-type is map",
        ));
    }
    let Some(items) = &s.items else {
        if !s.items_is_array {
            errors.push(FieldError::required(
                items_path,
                "must have a schema if x-kubernetes-list-type is map",
            ));
        }
        return;
    };
    if items.type_ != "object" {
        errors.push(FieldError::invalid(
            child(items_path, "type"),
            go_quote(&items.type_),
            "must be object if parent array's x-kubernetes-list-type is map",
        ));
        return;
    }
    let mut seen = BTreeSet::new();
    for name in &s.list_map_keys {
        match items.properties.get(name) {
            Some(property) if matches!(property.type_.as_str(), "array" | "object") => {
                errors.push(FieldError::invalid(
                    child(&key(&child(items_path, "properties"), name), "type"),
                    go_quote(&items.type_),
                    "must be a scalar type if parent array's x-kubernetes-list-type is map",
                ));
            }
            Some(_) => {}
            None => errors.push(FieldError::invalid(
                keys_path.clone(),
                keys_value.clone(),
                "entries must all be names of item properties",
            )),
        }
        if !seen.insert(name) {
            errors.push(FieldError::invalid(
                keys_path.clone(),
                keys_value.clone(),
                "must not contain duplicate entries",
            ));
        }
    }
}

/// The static checks of `x-kubernetes-validations` entries (compilation is [`crate::rules`]'s).
fn rule_checks(s: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    for (i, rule) in s.rules.iter().enumerate() {
        let rule_path = crate::errors::index(&child(path, "x-kubernetes-validations"), i);
        let trimmed_rule = rule.rule.trim();
        let trimmed_message = rule.message.trim();
        if trimmed_rule.is_empty() {
            errors.push(FieldError::required(
                child(&rule_path, "rule"),
                "rule is not specified",
            ));
        } else if !rule.message.is_empty() && trimmed_message.is_empty() {
            errors.push(FieldError::invalid(
                child(&rule_path, "message"),
                go_quote(&rule.message),
                "message must be non-empty if specified",
            ));
        } else if has_newlines(trimmed_message) {
            errors.push(FieldError::invalid(
                child(&rule_path, "message"),
                go_quote(&rule.message),
                "message must not contain line breaks",
            ));
        } else if has_newlines(trimmed_rule) && trimmed_message.is_empty() {
            errors.push(FieldError::required(
                child(&rule_path, "message"),
                "message must be specified if rule contains line breaks",
            ));
        }
        if !rule.message_expression.is_empty() && rule.message_expression.trim().is_empty() {
            errors.push(FieldError::required(
                child(&rule_path, "messageExpression"),
                "messageExpression must be non-empty if specified",
            ));
        }
        if let Some(reason) = rule.reason.as_deref() {
            if !SUPPORTED_RULE_REASONS.contains(&reason) {
                let supported = SUPPORTED_RULE_REASONS.map(String::from);
                errors.push(FieldError::not_supported(
                    child(&rule_path, "reason"),
                    go_quote(reason),
                    &supported,
                ));
            }
        }
        let field_path_path = child(&rule_path, "fieldPath");
        if !rule.field_path.is_empty() && rule.field_path.trim().is_empty() {
            errors.push(FieldError::invalid(
                field_path_path.clone(),
                go_quote(&rule.field_path),
                "fieldPath must be non-empty if specified",
            ));
        }
        if has_newlines(&rule.field_path) {
            errors.push(FieldError::invalid(
                field_path_path.clone(),
                go_quote(&rule.field_path),
                "fieldPath must not contain line breaks",
            ));
        }
        if !rule.field_path.is_empty()
            && crate::rules::normalize_field_path(&rule.field_path, s).is_err()
        {
            errors.push(FieldError::invalid(
                field_path_path,
                go_quote(&rule.field_path),
                "fieldPath must be a valid path",
            ));
        }
    }
}

pub(crate) fn has_newlines(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn check(schema: Value) -> Vec<String> {
        let mut errors = Vec::new();
        let parsed = parse(&schema, BASE, &mut errors);
        errors.extend(validate_structural(&parsed, BASE));
        errors.extend(validate_crd_schema(&parsed, BASE));
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn structural_schemas_pass() {
        let ok = [
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"],
                    "items": {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}}},
                "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "oneOfs": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
            }}}}),
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}}}),
            json!({"type": "object", "properties": {"template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}),
        ];
        for schema in ok {
            assert_eq!(check(schema.clone()), Vec::<String>::new(), "{schema}");
        }
    }

    #[test]
    fn non_structural_schemas_say_why() {
        let cases = [
            (
                json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
                vec!["spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"],
            ),
            (
                json!({"properties": {}}),
                vec!["spec.versions[0].schema.openAPIV3Schema.type: Required value: must not be empty at the root"],
            ),
            (
                json!({"type": "string"}),
                vec!["spec.versions[0].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"],
            ),
            (
                json!({"type": "object", "properties": {"list": {"type": "array"}}}),
                vec!["spec.versions[0].schema.openAPIV3Schema.properties[list].items: Required value: must be specified"],
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"type": "string", "properties": {"b": {}}}]}),
                vec![
                    "spec.versions[0].schema.openAPIV3Schema.anyOf[0].type: Forbidden: must be empty to be structural",
                    "spec.versions[0].schema.openAPIV3Schema.properties[b]: Required value: because it is defined in spec.versions[0].schema.openAPIV3Schema.anyOf[0].properties[b]",
                ],
            ),
            (
                json!({"type": "object", "additionalProperties": {"type": "string"}}),
                vec!["spec.versions[0].schema.openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root"],
            ),
            (
                json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}}),
                vec!["spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"],
            ),
            (
                json!({"type": "object", "properties": {"e": {"type": "object", "x-kubernetes-embedded-resource": true}}}),
                vec!["spec.versions[0].schema.openAPIV3Schema.properties[e].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"],
            ),
            (
                json!({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}}),
                vec!["spec.versions[0].schema.openAPIV3Schema.properties[s].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: "],
            ),
        ];
        for (schema, want) in cases {
            let got = check(schema.clone());
            assert_eq!(got.len(), want.len(), "{schema}: {got:#?}");
            for (got, want) in got.iter().zip(want) {
                assert!(got.starts_with(want), "{schema}:\n got {got}\nwant {want}");
            }
        }
    }

    #[test]
    fn crd_openapi_checks_say_why() {
        let cases = [
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}}),
                "spec.versions[0].schema.openAPIV3Schema.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ),
            (
                json!({"type": "object", "properties": {"r": {"$ref": "#/definitions/x", "type": "string"}}}),
                "spec.versions[0].schema.openAPIV3Schema.properties[r].$ref: Forbidden: $ref is not supported",
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}}),
                "spec.versions[0].schema.openAPIV3Schema.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
            ),
            (
                json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "list", "items": {"type": "string"}}}}),
                "spec.versions[0].schema.openAPIV3Schema.properties[l].x-kubernetes-list-type: Unsupported value: \"list\": supported values: \"atomic\", \"set\", \"map\"",
            ),
            (
                json!({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}}),
                "spec.versions[0].schema.openAPIV3Schema.properties[metadata].default: Forbidden: must not be set in top-level metadata",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() > 0", "reason": "Bad"}]}}}),
                "spec.versions[0].schema.openAPIV3Schema.properties[x].x-kubernetes-validations[0].reason: Unsupported value: \"Bad\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
            ),
            (
                json!({"type": "object", "x-kubernetes-validations": [{"rule": "true", "fieldPath": ".nope"}], "properties": {"x": {"type": "string"}}}),
                "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].fieldPath: Invalid value: \".nope\": fieldPath must be a valid path",
            ),
            (
                json!({"type": "object", "nullable": true}),
                "spec.versions[0].schema.openAPIV3Schema.nullable: Forbidden: nullable cannot be true at the root",
            ),
            (
                json!({"type": "object", "properties": {"t": {"type": 5}}}),
                "spec.versions[0].schema.openAPIV3Schema.properties[t].type: Invalid value: 5: must be a string",
            ),
        ];
        for (schema, want) in cases {
            let got = check(schema.clone());
            assert!(
                got.iter().any(|g| g == want),
                "{schema}:\n got {got:#?}\nwant {want}"
            );
        }
    }
}
