//! `Authorization: Bearer <key>` against the configured keys, in constant time.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header::AUTHORIZATION,
    middleware::Next,
    response::Response,
};
use common::config::Secret;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

#[derive(Clone)]
pub struct ApiKeys(Arc<Vec<Secret>>);

impl ApiKeys {
    pub fn new(keys: Vec<Secret>) -> Self {
        Self(Arc::new(keys))
    }

    /// Compares against every key without an early exit, so timing tells nothing about
    /// which key or how much of it matched.
    pub fn allows(&self, presented: &str) -> bool {
        let mut matched = subtle::Choice::from(0);
        for key in self.0.iter() {
            matched |= key.expose().as_bytes().ct_eq(presented.as_bytes());
        }
        matched.into()
    }
}

/// Middleware: 401 JSON unless the request carries an accepted key.
pub async fn require_api_key(State(keys): State<ApiKeys>, request: Request, next: Next) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(key) if keys.allows(key) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(vec![Secret::new("alpha-key"), Secret::new("beta-key")]);
        assert!(keys.allows("alpha-key"));
        assert!(keys.allows("beta-key"));
        assert!(!keys.allows("alpha-ke"));
        assert!(!keys.allows("alpha-keyy"));
        assert!(!keys.allows(""));
    }
}
