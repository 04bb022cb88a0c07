//! Extractors whose rejections are our JSON errors.

use axum::{
    body::Body,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::{error::ApiError, events};

/// Largest JSON body of the API's own routes (experiments, patches).
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// A JSON body read within [`MAX_JSON_BYTES`] (gzip accepted), with errors naming the path
/// of the bad field (`variants[1].allocation_percent`).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body): (Parts, Body) = req.into_parts();
        let bytes = events::read_body(&parts.headers, body, MAX_JSON_BYTES).await?;
        events::parse(&bytes).map(JsonBody)
    }
}

/// A query string whose parse errors become 400 JSON errors.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}
