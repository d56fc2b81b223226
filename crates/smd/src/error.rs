//! Errors of this crate. Each maps to one upstream failure, with upstream's wording where a
//! client can see it.

use std::fmt;

use crate::conflict::Conflicts;

/// A schema could not be built from OpenAPI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A `$ref` (or the root) names a definition that is not in the document.
    #[error("schema error: no type found matching: {0}")]
    MissingDefinition(String),
    /// The OpenAPI is not structural enough to convert (unknown type, list type, map type...).
    #[error("schema error: {0}")]
    Invalid(String),
}

/// One way an object does not fit its schema, at a path (`.spec.containers[name="a"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Where, as upstream prints paths; empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Everything wrong with an object, printed as upstream's `ValidationErrors`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            errs => {
                f.write_str("errors:")?;
                for e in errs {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ValidationErrors {}

/// A failure to read managed fields or to type an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A FieldsV1 value could not be decoded.
    #[error("error decoding set: {0}")]
    FieldsV1(String),
    /// A `metadata.managedFields` entry is malformed (bad operation, empty apiVersion, wrong
    /// fieldsType, bad time...).
    #[error("{0}")]
    ManagedFields(String),
    /// The object does not fit its schema.
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Other managers own fields the configuration would change (HTTP 409).
    #[error("{0}")]
    Conflicts(#[from] Conflicts),
    /// The applied configuration sets `metadata.managedFields` (HTTP 400, as upstream).
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInConfig,
    /// The applied configuration does not fit the schema (unknown field, duplicate list key...).
    #[error("failed to create typed patch object: {0}")]
    InvalidConfig(ValidationErrors),
    /// The live object does not fit the schema.
    #[error("failed to create typed live object: {0}")]
    InvalidLive(ValidationErrors),
}
