//! OpenAPI documents (stub).
