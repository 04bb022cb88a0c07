//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`), generated from the
//! handlers' annotations.

use axum::Router;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(title = "A/B testing API", description = "Experiments, sticky assignments, events and results. Every route but health, metrics, docs and the results page (`/ui`) needs `Authorization: Bearer <key>`."),
    paths(
        super::experiments::create, super::experiments::list, super::experiments::get, super::experiments::patch,
        super::assignment::assign, super::results::results, super::results::timeseries, super::results::event_types,
        ingest::events::post_event, ingest::events::post_batch,
    ),
    components(schemas(server::ErrorBody, ingest::events::Accepted)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

pub fn router() -> Router {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
