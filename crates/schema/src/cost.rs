//! The static cost limits of `x-kubernetes-validations` (upstream's `StaticEstimatedCostLimit`
//! and `StaticEstimatedCRDCostLimit`): a rule's estimated cost ([`ferry_cel::cost`]), times
//! how many times its node can occur in an object, may not exceed 10,000,000, nor may all
//! rules' and messageExpressions' together exceed 100,000,000.
//!
//! Sizes come from the schema as upstream's `SchemaDeclType` gives them: `maxItems`,
//! `maxProperties`, `maxLength` (times 4, in bytes), or, where those are not set, what fits in
//! a 3 MiB request. A rule ferry-cel cannot estimate ([`ferry_cel::Program::estimate_cost`]
//! gives `None`) is not limited and adds nothing to the total.
//!
//! Runtime costs (upstream's per-call limit and 10,000,000 budget per object validation) are
//! not tracked: the `cel` crate's interpreter counts nothing.

use std::collections::BTreeMap;

use ferry_cel::cost::{Decl, Kind};
use ferry_cel::Program;

use crate::errors::FieldError;
use crate::schema::{AdditionalProperties, Schema};

/// Upstream's `MaxRequestSizeBytes`.
const MAX_REQUEST_SIZE: u64 = 3 * 1024 * 1024;
/// The longest string a request can carry (upstream's `estimateMaxStringLengthPerRequest`).
const MAX_STRING: u64 = MAX_REQUEST_SIZE - 2;
/// Upstream's `StaticEstimatedCostLimit`.
const EXPRESSION_LIMIT: u64 = 10_000_000;
/// Upstream's `StaticEstimatedCRDCostLimit`.
const CRD_LIMIT: u64 = 100_000_000;

/// A schema node's CEL type, and the least its JSON can take (`MinSerializedSize`).
pub(crate) struct Typed {
    pub decl: Decl,
    pub min_size: u64,
}

/// Upstream's `SchemaDeclType`: `None` for a node CEL does not see (no type, or an array
/// without items).
pub(crate) fn decl_type(s: &Schema, resource_root: bool) -> Option<Typed> {
    if s.int_or_string {
        let max = s.max_length.map_or(MAX_STRING, |l| non_negative(l) * 4);
        return Some(scalar(Kind::Dyn, max, 1));
    }
    match s.type_.as_str() {
        "array" => {
            let items = decl_type(s.items.as_deref()?, s.items.as_deref()?.embedded_resource)?;
            let max = s
                .max_items
                .map_or(MAX_STRING / (items.min_size + 1), non_negative);
            Some(collection(Kind::List, max, items.decl))
        }
        "object" => match &s.additional_properties {
            Some(AdditionalProperties::Schema(values)) => {
                let values = decl_type(values, values.embedded_resource)?;
                let max = s
                    .max_properties
                    .map_or(MAX_STRING / (values.min_size + 6), non_negative);
                Some(collection(Kind::Map, max, values.decl))
            }
            _ => Some(object_type(s, resource_root)),
        },
        "string" => Some(match s.format.as_str() {
            "byte" => scalar(
                Kind::Bytes,
                s.max_length.map_or(MAX_STRING, non_negative),
                2,
            ),
            "duration" => scalar(Kind::Duration, 32, 3),
            "date" => scalar(Kind::Timestamp, 12, 12),
            "date-time" => scalar(Kind::Timestamp, 32, 21),
            _ => {
                let enum_max = s.enum_.as_ref().filter(|e| !e.is_empty()).map(|values| {
                    values
                        .iter()
                        .filter_map(|v| v.as_str())
                        .map(|v| v.len() as u64)
                        .max()
                        .unwrap_or(0)
                });
                let max = match (s.max_length, enum_max) {
                    (Some(max_length), _) => non_negative(max_length) * 4,
                    (None, Some(enum_max)) => enum_max,
                    (None, None) => MAX_STRING,
                };
                scalar(Kind::String, max, 2)
            }
        }),
        "boolean" => Some(scalar(Kind::Bool, 0, 4)),
        "number" => Some(scalar(Kind::Double, 0, 1)),
        "integer" => Some(scalar(Kind::Int, 0, 1)),
        _ => None,
    }
}

fn scalar(kind: Kind, max_elements: u64, min_size: u64) -> Typed {
    Typed {
        decl: Decl::scalar(kind, max_elements),
        min_size,
    }
}

/// A list or map of at most `max_elements` `elem`s; its JSON takes two bytes at the least.
fn collection(kind: Kind, max_elements: u64, elem: Decl) -> Typed {
    Typed {
        decl: Decl {
            kind,
            max_elements,
            elem: Some(Box::new(elem)),
            fields: BTreeMap::new(),
        },
        min_size: 2,
    }
}

fn non_negative(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// An object's fields; a resource's root (or embedded resource) always has `apiVersion`,
/// `kind` and `metadata.name`/`generateName` (upstream's `WithTypeAndObjectMeta`).
fn object_type(s: &Schema, resource_root: bool) -> Typed {
    let mut fields = BTreeMap::new();
    let mut min_size = 2;
    for (name, property) in &s.properties {
        let Some(field) = decl_type(property, property.embedded_resource) else {
            continue;
        };
        if s.required.contains(name) && property.default.is_none() {
            min_size += name.len() as u64 + field.min_size + 4;
        }
        fields.insert(name.clone(), field.decl);
    }
    if resource_root && !has_type_and_object_meta(s) {
        let string = || Decl::scalar(Kind::String, MAX_STRING);
        fields.insert("apiVersion".to_string(), string());
        fields.insert("kind".to_string(), string());
        let metadata = Decl {
            kind: Kind::Object,
            max_elements: 0,
            elem: None,
            fields: [("name", string()), ("generateName", string())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        fields.insert("metadata".to_string(), metadata);
    }
    Typed {
        decl: Decl {
            kind: Kind::Object,
            max_elements: 0,
            elem: None,
            fields,
        },
        min_size,
    }
}

fn has_type_and_object_meta(s: &Schema) -> bool {
    let is = |s: Option<&Schema>, t: &str| s.is_some_and(|s| s.type_ == t);
    let metadata = s.properties.get("metadata");
    is(s.properties.get("kind"), "string")
        && is(s.properties.get("apiVersion"), "string")
        && is(metadata, "object")
        && is(metadata.and_then(|m| m.properties.get("name")), "string")
        && is(
            metadata.and_then(|m| m.properties.get("generateName")),
            "string",
        )
}

/// How many times a node can occur in an object: `None` when under a list or map of
/// unbounded size (upstream's `CELSchemaContext.MaxCardinality`).
pub(crate) fn child_cardinality(parent: &Schema, cardinality: Option<u64>) -> Option<u64> {
    let max_elements = match parent.type_.as_str() {
        "object" if parent.additional_properties.is_some() => non_negative(parent.max_properties?),
        "object" => 1,
        "array" => non_negative(parent.max_items?),
        _ => 1,
    };
    Some(cardinality?.saturating_mul(max_elements))
}

/// What a rule at a node of `min_size` and `cardinality` costs in all, from its estimate.
pub(crate) fn expression_cost(estimate: u64, cardinality: Option<u64>, min_size: u64) -> u64 {
    // Unbounded: as many as fit in a request, one comma apart (upstream's maxCardinality).
    let cardinality = cardinality.unwrap_or(MAX_REQUEST_SIZE / (min_size + 1));
    estimate.saturating_mul(cardinality)
}

/// Upstream's `getCostErrorMessage`.
pub(crate) fn exceeds_budget(cost_name: &str, cost: u64, limit: u64) -> String {
    let factor = cost as f64 / limit as f64;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!("{cost_name} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)")
}

/// What an expression at a node is estimated with.
#[derive(Clone, Copy)]
pub(crate) struct Estimating<'a> {
    /// The node's type.
    pub typed: &'a Typed,
    /// Whether `oldSelf` is an optional (`optionalOldSelf: true`).
    pub optional: bool,
}

/// The estimated costs of a whole schema's rules (upstream's `TotalCost`).
#[derive(Debug, Default)]
pub(crate) struct TotalCost {
    total: u64,
    /// The most expensive expressions (at most 4, of at least 1% of the limit), costliest
    /// first.
    most_expensive: Vec<(String, u64)>,
}

impl TotalCost {
    /// Estimates `program` (a `rule` or `messageExpression`, as `what` says), its cost
    /// `scale`d by how many times it runs, and adds it to the total; the error of a cost over
    /// the per-expression limit. An expression without an estimate costs nothing.
    pub fn limit(
        &mut self,
        program: &Program,
        estimating: Estimating<'_>,
        what: &str,
        path: String,
        scale: impl Fn(u64) -> u64,
    ) -> Option<FieldError> {
        let estimate = program.estimate_cost(&estimating.typed.decl, estimating.optional)?;
        let cost = scale(estimate.max);
        let error = (cost > EXPRESSION_LIMIT).then(|| {
            let name = format!("estimated {what} cost");
            FieldError::forbidden(&path, exceeds_budget(&name, cost, EXPRESSION_LIMIT))
        });
        self.observe(path, cost);
        error
    }

    /// Adds an expression's cost, at `path`.
    fn observe(&mut self, path: String, cost: u64) {
        self.total = self.total.saturating_add(cost);
        if cost < CRD_LIMIT / 100 {
            return;
        }
        // Stable: of equal costs, the first observed stays first, as Go's sort leaves
        // them in practice for these few entries.
        let at = self.most_expensive.partition_point(|(_, c)| *c >= cost);
        self.most_expensive.insert(at, (path, cost));
        self.most_expensive.truncate(4);
    }

    /// The errors of a total over the limit, the schema at `path`.
    pub fn errors(&self, path: &str) -> Vec<FieldError> {
        if self.total <= CRD_LIMIT {
            return Vec::new();
        }
        let mut errors: Vec<FieldError> = self
            .most_expensive
            .iter()
            .map(|(path, _)| {
                FieldError::forbidden(
                    path.clone(),
                    "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                )
            })
            .collect();
        errors.push(FieldError::forbidden(
            path,
            exceeds_budget(
                "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                self.total,
                CRD_LIMIT,
            ),
        ));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parsed;
    use serde_json::json;

    #[test]
    fn sizes_follow_schema_decl_type() {
        let s = parsed(
            &json!({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "ints": {"type": "array", "items": {"type": "integer"}},
                "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 10}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "color": {"type": "string", "enum": ["red", "green"]},
            }}),
        );
        let typed = decl_type(&s, true).expect("typed");
        // {"name":""}: 2 + 4 + 2 + 4.
        assert_eq!(typed.min_size, 12);
        let field = |name: &str| &typed.decl.fields[name];
        assert_eq!(field("name").max_elements, MAX_STRING);
        assert_eq!(field("ints").max_elements, MAX_STRING / 2);
        assert_eq!(field("tags").max_elements, 5);
        assert_eq!(
            field("tags").elem.as_ref().map(|e| e.max_elements),
            Some(40)
        );
        assert_eq!(field("labels").max_elements, MAX_STRING / 8);
        assert_eq!(field("color").max_elements, 5);
        assert!(field("metadata").fields.contains_key("generateName"));
    }

    #[test]
    fn cardinality_multiplies_bounded_containers() {
        let list = |max: Option<i64>| {
            let mut s = parsed(&json!({"type": "array", "items": {"type": "string"}}));
            s.max_items = max;
            s
        };
        assert_eq!(child_cardinality(&list(Some(10)), Some(3)), Some(30));
        assert_eq!(child_cardinality(&list(None), Some(3)), None);
        assert_eq!(child_cardinality(&list(Some(10)), None), None);
        assert_eq!(expression_cost(5, None, 2), 5 * (MAX_REQUEST_SIZE / 3));
    }

    #[test]
    fn the_total_names_the_most_expensive() {
        let mut total = TotalCost::default();
        for i in 0..6 {
            total.observe(format!("r{i}"), 9_000_000 + i);
        }
        assert!(total.errors("s").is_empty());
        for i in 6..12 {
            total.observe(format!("r{i}"), 9_000_000 + i);
        }
        let errors: Vec<String> = total.errors("s").iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            vec![
                "r11: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                "r10: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                "r9: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                "r8: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
                "s: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of 1.080001x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)",
            ]
        );
    }

    #[test]
    fn budget_messages_read_as_upstream() {
        assert!(
            exceeds_budget("estimated rule cost", 12_000_000, EXPRESSION_LIMIT)
                .starts_with("estimated rule cost exceeds budget by factor of 1.200000x (try")
        );
        assert!(exceeds_budget("c", 25_000_000, EXPRESSION_LIMIT).contains("factor of 2.5x"));
        assert!(exceeds_budget("c", u64::MAX, EXPRESSION_LIMIT).contains("more than 100x"));
    }
}
