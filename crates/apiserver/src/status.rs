//! Errors as Kubernetes `Status` objects: every failure leaves the server as a `Status` with
//! upstream's reason, code and message wording, so kubectl prints what it prints for upstream.

use ferry_store::StoreError;
use serde::Serialize;
use serde_json::Value;

/// A failed request, mapped once to a `Status` at the HTTP edge.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, …).
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when upstream sends them.
    pub details: Option<Box<StatusDetails>>,
}

/// `Status.details`, its fields in upstream's order (`metav1.StatusDetails`); empty fields are
/// left out as Go's `omitempty` leaves them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its API group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Its kind; upstream puts the resource (plural) here for most errors.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Field-level causes (422 and some 403/429/504).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// When to retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i32>,
}

/// One cause of a `Status` (`metav1.StatusCause`), in upstream's field order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusCause {
    /// Machine-readable reason (`FieldValueInvalid`, `DisruptionBudget`, …).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The cause's message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The field the cause is about.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl StatusCause {
    /// A cause with a reason and a message.
    pub fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        StatusCause {
            reason: reason.into(),
            message: message.into(),
            field: String::new(),
        }
    }
}

/// The `Status` body as upstream's Go encoder writes it: fields in struct order, not sorted.
#[derive(Serialize)]
struct StatusBody<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a StatusDetails>,
    #[serde(skip_serializing_if = "is_zero")]
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

/// What an object is called in messages and details: `pods`, `deployments.apps`.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// API group ("" for core).
    pub group: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl<'a> Target<'a> {
    /// The object `name` of the resource `info`.
    pub fn of(info: &'a ferry_api::registry::ResourceInfo, name: &'a str) -> Target<'a> {
        Target {
            group: info.group,
            resource: info.plural,
            name,
        }
    }

    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> StatusDetails {
        StatusDetails {
            name: self.name.to_string(),
            group: self.group.to_string(),
            kind: self.resource.to_string(),
            ..StatusDetails::default()
        }
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 `pods "x" not found`.
    pub fn not_found(target: Target<'_>) -> Self {
        ApiError {
            details: Some(Box::new(target.details())),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", target.qualified(), target.name),
            )
        }
    }

    /// 404 for a path that names nothing served.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 `pods "x" already exists`.
    pub fn already_exists(target: Target<'_>) -> Self {
        ApiError {
            details: Some(Box::new(target.details())),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", target.qualified(), target.name),
            )
        }
    }

    /// 409 on a stale resourceVersion.
    pub fn conflict(target: Target<'_>, why: &str) -> Self {
        ApiError {
            details: Some(Box::new(target.details())),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {why}",
                    target.qualified(),
                    target.name
                ),
            )
        }
    }

    /// The message upstream gives for a stale resourceVersion.
    pub const MODIFIED: &'static str =
        "the object has been modified; please apply your changes to the latest version and try again";

    /// 422 with field causes: `Kind "name" is invalid: [field: Reason: detail, ...]`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[FieldError]) -> Self {
        let list: Vec<String> = causes.iter().map(FieldError::to_string).collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            details: Some(Box::new(StatusDetails {
                name: name.to_string(),
                group: group.to_string(),
                kind: kind.to_string(),
                causes: causes
                    .iter()
                    .map(|c| StatusCause {
                        reason: c.kind.reason().to_string(),
                        message: c.message(),
                        field: c.field.clone(),
                    })
                    .collect(),
                retry_after_seconds: None,
            })),
            ..Self::new(
                422,
                "Invalid",
                format!("{qualified} \"{name}\" is invalid: {joined}"),
            )
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 worded as upstream's authorizer denial.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 403 `<resource>.<group> "name" is forbidden: <why>` (upstream's `NewForbidden`).
    pub fn forbidden_object(target: Target<'_>, why: &str) -> Self {
        ApiError {
            details: Some(Box::new(target.details())),
            ..Self::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{}\" is forbidden: {why}",
                    target.qualified(),
                    target.name
                ),
            )
        }
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 406.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 410 for a resourceVersion compacted away.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413.
    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// 415.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"))
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 500 with `message` as it is (upstream's panic recovery).
    pub fn internal_message(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 429 when too many requests are in flight, with upstream's message.
    pub fn too_many_requests() -> Self {
        ApiError {
            details: Some(Box::new(StatusDetails {
                retry_after_seconds: Some(1),
                ..StatusDetails::default()
            })),
            ..Self::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            )
        }
    }

    /// 404 with a message of its own (a kubelet's answer).
    pub fn not_found_message(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }

    /// Another server's answer with `code` (upstream's `NewGenericServerResponse` reasons).
    pub fn from_code(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            c if c >= 500 => "InternalError",
            _ => "",
        };
        Self::new(code, reason, message)
    }

    /// 503 while the store is unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    fn body(&self) -> StatusBody<'_> {
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: self.details.as_deref(),
            code: self.code,
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or(Value::Null)
    }

    /// The `Status` as upstream writes it on the wire: its fields in Go's order, then a
    /// newline (Go's `json.Encoder`).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string(&self.body()).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The message, as the `Status` carries it.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StoreError::FutureRevision { requested, current } => ApiError {
                // Upstream answers a future resourceVersion on a list with 504 "Too large
                // resource version" after waiting; we answer at once.
                code: 504,
                reason: "Timeout",
                message: format!("Too large resource version: {requested}, current: {current}"),
                details: Some(Box::new(StatusDetails {
                    causes: vec![StatusCause::new(
                        "ResourceVersionTooLarge",
                        "Too large resource version",
                    )],
                    retry_after_seconds: Some(1),
                    ..StatusDetails::default()
                })),
            },
            StoreError::Closed(m) | StoreError::Etcd(m) => ApiError::unavailable(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// The `Status` response.
    pub fn into_response(self) -> crate::body::Response {
        crate::body::response(self.code, "application/json", self.to_json())
    }
}

/// One field problem of a 422, as upstream's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path (`metadata.name`, `spec.containers[0].image`).
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The offending value as upstream prints it (strings quoted, maps as Go prints them).
    pub value: Option<String>,
    /// Upstream's detail text.
    pub detail: String,
}

/// `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Required value`.
    Required,
    /// `Invalid value`.
    Invalid,
    /// `Duplicate value`.
    Duplicate,
    /// `Unsupported value`.
    NotSupported,
    /// `Forbidden`.
    Forbidden,
    /// `Too many`.
    TooMany,
    /// `Not found`.
    NotFound,
    /// `Invalid value`, for a value of the wrong type (`FieldValueTypeInvalid`).
    TypeInvalid,
    /// `Too long`.
    TooLong,
    /// `Internal error`.
    Internal,
}

impl FieldErrorKind {
    /// `FieldValueRequired`, … as in causes' `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::Internal => "InternalError",
        }
    }

    fn text(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::Internal => "Internal error",
        }
    }
}

impl FieldError {
    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: detail.into(),
        }
    }

    /// A field has a bad value.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(format!("{:?}", value.into())),
            detail: detail.into(),
        }
    }

    /// A field has a bad value that is printed as given (numbers, Go maps).
    pub fn invalid_raw(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// A reference to something that does not exist (upstream's `field.NotFound`).
    pub fn not_found(field: impl Into<String>, value: &str) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::NotFound,
            value: Some(format!("{value:?}")),
            detail: String::new(),
        }
    }

    /// A field may not be set or changed.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Forbidden,
            value: None,
            detail: detail.into(),
        }
    }

    /// A value is not one of `supported` (upstream's `field.NotSupported`).
    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::NotSupported,
            value: Some(format!("{value:?}")),
            detail: format!("supported values: {}", supported.join(", ")),
        }
    }

    /// A list is longer than `max` (upstream's `field.TooMany`).
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::TooMany,
            value: Some(actual.to_string()),
            detail: format!("must have at most {max} items"),
        }
    }

    /// A value repeats.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Duplicate,
            value: Some(format!("{:?}", value.into())),
            detail: String::new(),
        }
    }

    /// A value repeats that is printed as given (numbers, Go structs).
    pub fn duplicate_raw(field: impl Into<String>, value: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Duplicate,
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    /// The cause's message: `Invalid value: "x": detail`.
    pub fn message(&self) -> String {
        let mut m = self.kind.text().to_string();
        if let Some(v) = &self.value {
            m.push_str(&format!(": {v}"));
        }
        if !self.detail.is_empty() {
            m.push_str(&format!(": {}", self.detail));
        }
        m
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording_matches_upstream() {
        let target = Target {
            group: "apps",
            resource: "deployments",
            name: "web",
        };
        assert_eq!(
            ApiError::not_found(target).message,
            "deployments.apps \"web\" not found"
        );
        let pods = Target {
            group: "",
            resource: "pods",
            name: "p",
        };
        assert_eq!(
            ApiError::already_exists(pods).message,
            "pods \"p\" already exists"
        );
        assert_eq!(
            ApiError::conflict(pods, ApiError::MODIFIED).message,
            "Operation cannot be fulfilled on pods \"p\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let invalid = ApiError::invalid(
            "ConfigMap",
            "",
            "Bad_Name",
            &[FieldError::invalid("metadata.name", "Bad_Name", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")],
        );
        assert!(invalid.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123"));
        assert_eq!(invalid.to_status()["code"], 422);
    }

    #[test]
    fn status_is_written_in_upstream_field_order() {
        let target = Target {
            group: "",
            resource: "namespaces",
            name: "x",
        };
        assert_eq!(
            ApiError::already_exists(target).to_json(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"namespaces \\\"x\\\" already exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"x\",\"kind\":\"namespaces\"},\"code\":409}\n"
        );
        assert_eq!(
            ApiError::unauthorized().to_json(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n"
        );
        let invalid = ApiError::invalid(
            "Pod",
            "",
            "p",
            &[FieldError::required("spec.containers", "")],
        );
        assert!(invalid.to_json().contains("\"details\":{\"name\":\"p\",\"kind\":\"Pod\",\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":\"Required value\",\"field\":\"spec.containers\"}]},\"code\":422}"), "{}", invalid.to_json());
    }
}
