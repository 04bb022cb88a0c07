//! A query-string extractor whose errors are 400 JSON errors naming the parameter.
//!
//! Parameters are typed (see the api's `routes::params`): a value that does not parse or
//! breaks its rule is rejected by its type's `Deserialize`, and the error names it.

use axum::{extract::FromRequestParts, http::request::Parts};
use serde::de::DeserializeOwned;

use crate::{
    body::missing_field,
    error::{ApiError, ErrorCode},
};

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Parses `a=1&b=x` into `T`, naming the parameter at fault.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        match missing_field(&message).or((path != "." && !path.is_empty()).then_some(path)) {
            Some(field) => ApiError::field(ErrorCode::InvalidQuery, field, message),
            None => ApiError::invalid(ErrorCode::InvalidQuery, message),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Params {
        event_type: String,
        limit: Option<u32>,
    }

    fn field(e: ApiError) -> Option<String> {
        match e {
            ApiError::Invalid { field, code: ErrorCode::InvalidQuery, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_parameter() {
        let ok: Params = parse("event_type=purchase&limit=5&unknown=1").expect("parses");
        assert_eq!((ok.event_type.as_str(), ok.limit), ("purchase", Some(5)));
        assert_eq!(field(parse::<Params>("limit=5").expect_err("missing")), Some("event_type".into()));
        assert_eq!(field(parse::<Params>("event_type=x&limit=-1").expect_err("bad")), Some("limit".into()));
        assert_eq!(parse::<Params>("event_type=a%20b").expect("decoded").event_type, "a b");
    }
}
