//! The error answers as reusable OpenAPI responses (`#/components/responses/...`), so every
//! route lists the errors it can give the same way, with the headers they carry: a 401
//! has `WWW-Authenticate`, a 503 `Retry-After` (see [`crate::error`]).
//!
//! The structs are never built: they exist for their `ToResponse` derive.
#![allow(dead_code)]

use utoipa::ToResponse;

use crate::ErrorBody;

/// The request is malformed or breaks a rule; `field` names the culprit.
#[derive(ToResponse)]
pub struct BadRequest(ErrorBody);

/// Missing or invalid `Authorization: Bearer <key>`.
#[derive(ToResponse)]
#[response(headers(("WWW-Authenticate" = String, description = "`Bearer`")))]
pub struct Unauthorized(ErrorBody);

/// No such resource (an experiment id that does not exist).
#[derive(ToResponse)]
pub struct NotFound(ErrorBody);

/// The request conflicts with the resource's state: a paused or stopped experiment
/// assigns no new users.
#[derive(ToResponse)]
pub struct Conflict(ErrorBody);

/// The body (compressed or decompressed) or the batch is larger than accepted.
#[derive(ToResponse)]
pub struct PayloadTooLarge(ErrorBody);

/// A `Content-Encoding` other than `gzip` or `identity`.
#[derive(ToResponse)]
pub struct UnsupportedMediaType(ErrorBody);

/// A dependency (Postgres, ClickHouse or Kafka) did not answer in time; nothing was
/// stored or acknowledged, retry after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u32, description = "Seconds to wait before retrying")))]
pub struct Unavailable(ErrorBody);
