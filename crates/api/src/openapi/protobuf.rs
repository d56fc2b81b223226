//! The v2 document as gnostic's `openapi.v2.Document` protobuf, the message kubectl decodes:
//! the messages of gnostic's `OpenAPIv2.proto` that the document uses, as `prost` types with
//! that file's field numbers, filled from the JSON document and encoded by `prost`.
//! Messages and fields the document never uses (security, headers, examples, xml, …) are left
//! out; prost writes proto3's defaults (empty strings, zeros, `false`) as absent, as Go does.

use prost::Message;
use serde_json::{Map, Value};

/// `openapi.v2.Document`.
#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(string, repeated, tag = "5")]
    schemes: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
}

/// `Info`.
#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
    #[prost(string, tag = "3")]
    description: String,
}

/// `Paths`: the path items in document order.
#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

/// `NamedPathItem`.
#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

/// `Definitions`.
#[derive(Clone, PartialEq, Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

/// `NamedSchema` (also the entries of `Properties`).
#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

/// `PathItem`.
#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "6")]
    options: Option<Operation>,
    #[prost(message, optional, tag = "7")]
    head: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    vendor_extension: Vec<NamedAny>,
}

/// `Operation`.
#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, repeated, tag = "1")]
    tags: Vec<String>,
    #[prost(string, tag = "2")]
    summary: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(string, repeated, tag = "6")]
    produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    schemes: Vec<String>,
    #[prost(bool, tag = "11")]
    deprecated: bool,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// `Responses`.
#[derive(Clone, PartialEq, Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
}

/// `NamedResponseValue`.
#[derive(Clone, PartialEq, Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

/// `ResponseValue`, whose `oneof` is always a `Response` here.
#[derive(Clone, PartialEq, Message)]
struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    response: Option<Response>,
}

/// `Response`.
#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<SchemaItem>,
    #[prost(message, repeated, tag = "5")]
    vendor_extension: Vec<NamedAny>,
}

/// `SchemaItem`, whose `oneof` is always a `Schema` here.
#[derive(Clone, PartialEq, Message)]
struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    schema: Option<Schema>,
}

/// `ParametersItem`.
#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(oneof = "ParametersItemOneof", tags = "1, 2")]
    oneof: Option<ParametersItemOneof>,
}

/// `ParametersItem.oneof`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum ParametersItemOneof {
    #[prost(message, tag = "1")]
    Parameter(Box<Parameter>),
    #[prost(message, tag = "2")]
    JsonReference(JsonReference),
}

/// `JsonReference`.
#[derive(Clone, PartialEq, Message)]
struct JsonReference {
    #[prost(string, tag = "1")]
    _ref: String,
    #[prost(string, tag = "2")]
    description: String,
}

/// `Parameter`.
#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(oneof = "ParameterOneof", tags = "1, 2")]
    oneof: Option<ParameterOneof>,
}

/// `Parameter.oneof`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum ParameterOneof {
    #[prost(message, tag = "1")]
    BodyParameter(Box<BodyParameter>),
    #[prost(message, tag = "2")]
    NonBodyParameter(Box<NonBodyParameter>),
}

/// `BodyParameter`.
#[derive(Clone, PartialEq, Message)]
struct BodyParameter {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(bool, tag = "4")]
    required: bool,
    #[prost(message, optional, tag = "5")]
    schema: Option<Schema>,
    #[prost(message, repeated, tag = "6")]
    vendor_extension: Vec<NamedAny>,
}

/// `NonBodyParameter`.
#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(oneof = "NonBodyParameterOneof", tags = "1, 2, 3, 4")]
    oneof: Option<NonBodyParameterOneof>,
}

/// `NonBodyParameter.oneof`: header and path parameters share one layout, query and form data
/// parameters another (`allow_empty_value` as field 5 moves the rest up by one).
#[derive(Clone, PartialEq, prost::Oneof)]
enum NonBodyParameterOneof {
    #[prost(message, tag = "1")]
    Header(HeaderOrPathParameter),
    #[prost(message, tag = "2")]
    FormData(QueryOrFormDataParameter),
    #[prost(message, tag = "3")]
    Query(QueryOrFormDataParameter),
    #[prost(message, tag = "4")]
    Path(HeaderOrPathParameter),
}

/// `HeaderParameterSubSchema` and `PathParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
struct HeaderOrPathParameter {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "5")]
    r#type: String,
    #[prost(string, tag = "6")]
    format: String,
    #[prost(string, tag = "8")]
    collection_format: String,
    #[prost(message, optional, tag = "9")]
    default: Option<Any>,
    #[prost(bool, tag = "19")]
    unique_items: bool,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "22")]
    vendor_extension: Vec<NamedAny>,
}

/// `QueryParameterSubSchema` and `FormDataParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
struct QueryOrFormDataParameter {
    #[prost(bool, tag = "1")]
    required: bool,
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(bool, tag = "5")]
    allow_empty_value: bool,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(string, tag = "7")]
    format: String,
    #[prost(string, tag = "9")]
    collection_format: String,
    #[prost(message, optional, tag = "10")]
    default: Option<Any>,
    #[prost(bool, tag = "20")]
    unique_items: bool,
    #[prost(message, repeated, tag = "21")]
    r#enum: Vec<Any>,
    #[prost(message, repeated, tag = "23")]
    vendor_extension: Vec<NamedAny>,
}

/// `Schema`.
#[derive(Clone, PartialEq, Message)]
struct Schema {
    #[prost(string, tag = "1")]
    _ref: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "3")]
    title: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(message, optional, tag = "5")]
    default: Option<Any>,
    #[prost(double, tag = "6")]
    multiple_of: f64,
    #[prost(double, tag = "7")]
    maximum: f64,
    #[prost(bool, tag = "8")]
    exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    minimum: f64,
    #[prost(bool, tag = "10")]
    exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    max_length: i64,
    #[prost(int64, tag = "12")]
    min_length: i64,
    #[prost(string, tag = "13")]
    pattern: String,
    #[prost(int64, tag = "14")]
    max_items: i64,
    #[prost(int64, tag = "15")]
    min_items: i64,
    #[prost(bool, tag = "16")]
    unique_items: bool,
    #[prost(int64, tag = "17")]
    max_properties: i64,
    #[prost(int64, tag = "18")]
    min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, optional, tag = "21")]
    additional_properties: Option<AdditionalPropertiesItem>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(string, tag = "26")]
    discriminator: String,
    #[prost(bool, tag = "27")]
    read_only: bool,
    #[prost(message, optional, tag = "30")]
    example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

/// `AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, Message)]
struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalPropertiesOneof", tags = "1, 2")]
    oneof: Option<AdditionalPropertiesOneof>,
}

/// `AdditionalPropertiesItem.oneof`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum AdditionalPropertiesOneof {
    #[prost(message, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// `TypeItem`.
#[derive(Clone, PartialEq, Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

/// `ItemsItem`.
#[derive(Clone, PartialEq, Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

/// `Properties`.
#[derive(Clone, PartialEq, Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

/// `Any`: a JSON value as its YAML text (JSON is YAML).
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

/// `NamedAny`: one vendor extension.
#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

/// The v2 JSON document encoded as `openapi.v2.Document`.
pub(super) fn document(doc: &Value) -> Vec<u8> {
    Document {
        swagger: string(doc.get("swagger")),
        info: doc.get("info").map(|info| Info {
            title: string(info.get("title")),
            version: string(info.get("version")),
            description: string(info.get("description")),
        }),
        schemes: strings(doc.get("schemes")),
        consumes: strings(doc.get("consumes")),
        produces: strings(doc.get("produces")),
        paths: doc
            .get("paths")
            .and_then(Value::as_object)
            .map(|paths| Paths {
                path: paths
                    .iter()
                    .map(|(name, item)| NamedPathItem {
                        name: name.clone(),
                        value: Some(path_item(item)),
                    })
                    .collect(),
            }),
        definitions: doc
            .get("definitions")
            .and_then(Value::as_object)
            .map(|defs| Definitions {
                additional_properties: named_schemas(defs),
            }),
    }
    .encode_to_vec()
}

fn path_item(item: &Value) -> PathItem {
    let op = |method: &str| item.get(method).map(operation);
    PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters(item.get("parameters")),
        vendor_extension: vendor_extensions(item),
    }
}

fn operation(op: &Value) -> Operation {
    Operation {
        tags: strings(op.get("tags")),
        summary: string(op.get("summary")),
        description: string(op.get("description")),
        operation_id: string(op.get("operationId")),
        produces: strings(op.get("produces")),
        consumes: strings(op.get("consumes")),
        parameters: parameters(op.get("parameters")),
        responses: op
            .get("responses")
            .and_then(Value::as_object)
            .map(|responses| Responses {
                response_code: responses
                    .iter()
                    .map(|(code, response)| NamedResponseValue {
                        name: code.clone(),
                        value: Some(ResponseValue {
                            response: Some(Response {
                                description: string(response.get("description")),
                                schema: response.get("schema").map(|s| SchemaItem {
                                    schema: Some(schema(s)),
                                }),
                                vendor_extension: vendor_extensions(response),
                            }),
                        }),
                    })
                    .collect(),
            }),
        schemes: strings(op.get("schemes")),
        deprecated: boolean(op.get("deprecated")),
        vendor_extension: vendor_extensions(op),
    }
}

fn parameters(list: Option<&Value>) -> Vec<ParametersItem> {
    let list = list
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .map(|p| ParametersItem {
            oneof: Some(parameters_item(p)),
        })
        .collect()
}

/// A parameter, or a reference to one.
fn parameters_item(p: &Value) -> ParametersItemOneof {
    if p.get("$ref").is_some() {
        return ParametersItemOneof::JsonReference(JsonReference {
            _ref: string(p.get("$ref")),
            description: string(p.get("description")),
        });
    }
    let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
    let parameter = if location == "body" {
        ParameterOneof::BodyParameter(Box::new(BodyParameter {
            description: string(p.get("description")),
            name: string(p.get("name")),
            r#in: location.to_owned(),
            required: boolean(p.get("required")),
            schema: p.get("schema").map(schema),
            vendor_extension: vendor_extensions(p),
        }))
    } else {
        let header_or_path = || HeaderOrPathParameter {
            required: boolean(p.get("required")),
            r#in: location.to_owned(),
            description: string(p.get("description")),
            name: string(p.get("name")),
            r#type: string(p.get("type")),
            format: string(p.get("format")),
            collection_format: string(p.get("collectionFormat")),
            default: p.get("default").map(any),
            unique_items: boolean(p.get("uniqueItems")),
            r#enum: anys(p.get("enum")),
            vendor_extension: vendor_extensions(p),
        };
        let query_or_form_data = || QueryOrFormDataParameter {
            required: boolean(p.get("required")),
            r#in: location.to_owned(),
            description: string(p.get("description")),
            name: string(p.get("name")),
            allow_empty_value: boolean(p.get("allowEmptyValue")),
            r#type: string(p.get("type")),
            format: string(p.get("format")),
            collection_format: string(p.get("collectionFormat")),
            default: p.get("default").map(any),
            unique_items: boolean(p.get("uniqueItems")),
            r#enum: anys(p.get("enum")),
            vendor_extension: vendor_extensions(p),
        };
        ParameterOneof::NonBodyParameter(Box::new(NonBodyParameter {
            oneof: Some(match location {
                "header" => NonBodyParameterOneof::Header(header_or_path()),
                "formData" => NonBodyParameterOneof::FormData(query_or_form_data()),
                "query" => NonBodyParameterOneof::Query(query_or_form_data()),
                _ => NonBodyParameterOneof::Path(header_or_path()),
            }),
        }))
    };
    ParametersItemOneof::Parameter(Box::new(Parameter {
        oneof: Some(parameter),
    }))
}

fn schema(s: &Value) -> Schema {
    let Some(o) = s.as_object() else {
        return Schema::default();
    };
    let number = |key: &str| o.get(key).and_then(Value::as_f64).unwrap_or_default();
    let integer = |key: &str| o.get(key).and_then(Value::as_i64).unwrap_or_default();
    Schema {
        _ref: string(o.get("$ref")),
        format: string(o.get("format")),
        title: string(o.get("title")),
        description: string(o.get("description")),
        default: o.get("default").map(any),
        multiple_of: number("multipleOf"),
        maximum: number("maximum"),
        exclusive_maximum: boolean(o.get("exclusiveMaximum")),
        minimum: number("minimum"),
        exclusive_minimum: boolean(o.get("exclusiveMinimum")),
        max_length: integer("maxLength"),
        min_length: integer("minLength"),
        pattern: string(o.get("pattern")),
        max_items: integer("maxItems"),
        min_items: integer("minItems"),
        unique_items: boolean(o.get("uniqueItems")),
        max_properties: integer("maxProperties"),
        min_properties: integer("minProperties"),
        required: strings(o.get("required")),
        r#enum: anys(o.get("enum")),
        additional_properties: match o.get("additionalProperties") {
            Some(Value::Bool(b)) => Some(AdditionalPropertiesOneof::Boolean(*b)),
            Some(ap @ Value::Object(_)) => {
                Some(AdditionalPropertiesOneof::Schema(Box::new(schema(ap))))
            }
            _ => None,
        }
        .map(|oneof| AdditionalPropertiesItem { oneof: Some(oneof) }),
        r#type: o.get("type").map(|t| TypeItem {
            value: strings(Some(t)),
        }),
        items: match o.get("items") {
            Some(Value::Array(items)) => Some(ItemsItem {
                schema: items.iter().map(schema).collect(),
            }),
            Some(item @ Value::Object(_)) => Some(ItemsItem {
                schema: vec![schema(item)],
            }),
            _ => None,
        },
        all_of: o
            .get("allOf")
            .and_then(Value::as_array)
            .map(|all| all.iter().map(schema).collect())
            .unwrap_or_default(),
        properties: o
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| Properties {
                additional_properties: named_schemas(props),
            }),
        discriminator: string(o.get("discriminator")),
        read_only: boolean(o.get("readOnly")),
        example: o.get("example").map(any),
        vendor_extension: vendor_extensions(s),
    }
}

fn named_schemas(schemas: &Map<String, Value>) -> Vec<NamedSchema> {
    schemas
        .iter()
        .map(|(name, s)| NamedSchema {
            name: name.clone(),
            value: Some(schema(s)),
        })
        .collect()
}

/// A string field (absent or not a string: empty, which proto3 leaves out).
fn string(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// A repeated string field from a JSON array (or a single string).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn boolean(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or_default()
}

fn any(v: &Value) -> Any {
    Any {
        yaml: serde_json::to_string(v).unwrap_or_default(),
    }
}

fn anys(v: Option<&Value>) -> Vec<Any> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(any).collect())
        .unwrap_or_default()
}

/// The `x-` keys of an object, in its order.
fn vendor_extensions(v: &Value) -> Vec<NamedAny> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_served_document_decodes_whole() {
        let doc = super::super::build_v2_doc();
        let decoded = Document::decode(document(&doc).as_slice()).expect("decodes");
        let paths = decoded.paths.expect("paths").path;
        assert_eq!(paths.len(), doc["paths"].as_object().expect("paths").len());
        let definitions = decoded
            .definitions
            .expect("definitions")
            .additional_properties;
        assert_eq!(
            definitions.len(),
            doc["definitions"].as_object().expect("definitions").len()
        );
        let deployment = definitions
            .iter()
            .find(|d| d.name == "io.k8s.api.apps.v1.Deployment")
            .and_then(|d| d.value.as_ref())
            .expect("Deployment");
        assert!(deployment
            .properties
            .as_ref()
            .expect("properties")
            .additional_properties
            .iter()
            .any(|p| p.name == "spec"));
        let gvk = deployment
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .and_then(|e| e.value.as_ref())
            .expect("gvk");
        assert_eq!(
            gvk.yaml,
            r#"[{"group":"apps","kind":"Deployment","version":"v1"}]"#
        );
    }

    #[test]
    fn decodes_back() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/api/v1/pods": {"get": {
                "operationId": "listPods",
                "parameters": [
                    {"name": "watch", "in": "query", "type": "boolean", "uniqueItems": true},
                    {"$ref": "#/parameters/pretty"}
                ],
                "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/x"}}},
                "x-kubernetes-action": "list"
            }}},
            "definitions": {"x": {
                "type": "object",
                "required": ["a"],
                "additionalProperties": false,
                "properties": {"a": {"type": "integer", "format": "int64", "minimum": 1.0}}
            }}
        });
        let decoded = Document::decode(document(&doc).as_slice()).expect("decodes");
        assert_eq!(decoded.swagger, "2.0");
        let item = decoded.paths.expect("paths").path.remove(0);
        assert_eq!(item.name, "/api/v1/pods");
        let get = item.value.expect("item").get.expect("get");
        assert_eq!(get.operation_id, "listPods");
        assert_eq!(get.vendor_extension[0].name, "x-kubernetes-action");
        assert_eq!(
            get.vendor_extension[0].value.as_ref().expect("any").yaml,
            "\"list\""
        );
        let watch = match &get.parameters[0].oneof {
            Some(ParametersItemOneof::Parameter(p)) => match &p.oneof {
                Some(ParameterOneof::NonBodyParameter(n)) => match &n.oneof {
                    Some(NonBodyParameterOneof::Query(watch)) => watch,
                    other => panic!("not a query parameter: {other:?}"),
                },
                other => panic!("not a non-body parameter: {other:?}"),
            },
            other => panic!("not a parameter: {other:?}"),
        };
        assert_eq!(
            (
                watch.name.as_str(),
                watch.r#type.as_str(),
                watch.unique_items
            ),
            ("watch", "boolean", true)
        );
        assert!(
            matches!(&get.parameters[1].oneof, Some(ParametersItemOneof::JsonReference(r)) if r._ref == "#/parameters/pretty")
        );
        let x = decoded
            .definitions
            .expect("definitions")
            .additional_properties
            .remove(0);
        let x = x.value.expect("schema");
        assert_eq!(x.required, ["a"]);
        assert_eq!(x.r#type.expect("type").value, ["object"]);
        assert_eq!(
            x.additional_properties.and_then(|a| a.oneof),
            Some(AdditionalPropertiesOneof::Boolean(false))
        );
        let a = &x.properties.expect("properties").additional_properties[0];
        assert_eq!(a.value.as_ref().map(|a| a.minimum), Some(1.0));
    }
}
