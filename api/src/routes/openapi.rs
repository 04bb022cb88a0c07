//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`), generated from the
//! handlers' annotations, then made exact where the annotations cannot say it (see
//! [`ExactResponses`]). `scripts/schemathesis` checks the running API against it.

use std::collections::BTreeMap;

use axum::Router;
use utoipa::{
    openapi::{
        schema::{AdditionalProperties, Object, Schema},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        RefOr,
    },
    Modify, OpenApi,
};
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(title = "A/B testing API", description = "Experiments, sticky assignments, events and results. Every route but health, metrics, docs and the results page (`/ui`) needs `Authorization: Bearer <key>`; without it the answer is 401. Errors are JSON (`ErrorBody`); a 503 means a dependency did not answer in time and nothing was stored: retry after `Retry-After` seconds."),
    paths(
        super::experiments::create, super::experiments::list, super::experiments::get, super::experiments::patch,
        super::assignment::assign, super::assignment::assign_with_attributes,
        super::metrics::create, super::metrics::list, super::metrics::get, super::metrics::patch,
        super::rollout::create_layer, super::rollout::list_layers, super::rollout::get_layer,
        super::rollout::create_holdout, super::rollout::sdk_config, super::results::results, super::results::timeseries, super::results::event_types,
        ingest::events::post_event, ingest::events::post_batch, ingest::exposures::post_exposures,
    ),
    components(
        schemas(server::ErrorBody, ingest::events::Accepted),
        responses(
            server::openapi::BadRequest, server::openapi::Unauthorized, server::openapi::NotFound,
            server::openapi::Conflict, server::openapi::PayloadTooLarge, server::openapi::UnsupportedMediaType,
            server::openapi::Unavailable,
        ),
    ),
    modifiers(&BearerAuth, &ExactResponses),
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

/// Request bodies: serde ignores fields it does not know and lets optional ones be absent,
/// so these schemas stay open, with only their required fields required.
const REQUEST_SCHEMAS: [&str; 16] = [
    "NewExperiment",
    "NewVariant",
    "ExperimentPatch",
    "EventSchema",
    "EventBatch",
    "LayerAsk",
    "NewLayer",
    "NewHoldout",
    "AssignmentRequest",
    "ExposureSchema",
    "ExposureBatchSchema",
    "NewMetric",
    "MetricPatch",
    "ExperimentMetrics",
    "Guardrail",
    "Denominator",
];

/// Response fields serde leaves out (`skip_serializing_if`) rather than writing null.
const OMITTED_WHEN_EMPTY: [(&str, &str); 1] = [("ErrorBody", "field")];

/// Response schemas say exactly what serde writes: every field, null when empty (utoipa
/// marks `Option` fields as not required), and nothing else (`additionalProperties:
/// false`). A flattened struct (utoipa's `allOf`) becomes the one object serde writes.
struct ExactResponses;

impl Modify for ExactResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else { return };
        let all = components.schemas.clone();
        for (name, schema) in components.schemas.iter_mut() {
            if REQUEST_SCHEMAS.contains(&name.as_str()) {
                continue;
            }
            if let RefOr::T(Schema::AllOf(all_of)) = schema {
                *schema = RefOr::T(Schema::Object(merged(&all_of.items, &all)));
            }
            if let RefOr::T(Schema::Object(object)) = schema {
                if object.properties.is_empty() {
                    continue; // an enum or a scalar
                }
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                object.required = object
                    .properties
                    .keys()
                    .filter(|field| !OMITTED_WHEN_EMPTY.contains(&(name, field)))
                    .cloned()
                    .collect();
            }
        }
    }
}

/// One object with the properties of all `items` (component references resolved, nested
/// flattening included).
fn merged(items: &[RefOr<Schema>], components: &BTreeMap<String, RefOr<Schema>>) -> Object {
    let mut object = Object::new();
    for item in items {
        merge_into(&mut object, item, components);
    }
    object.schema_type = utoipa::openapi::schema::Type::Object.into();
    object
}

fn merge_into(object: &mut Object, item: &RefOr<Schema>, components: &BTreeMap<String, RefOr<Schema>>) {
    let resolved = match item {
        RefOr::Ref(r) => r.ref_location.rsplit('/').next().and_then(|name| components.get(name)),
        inline => Some(inline),
    };
    match resolved {
        Some(RefOr::T(Schema::Object(part))) => {
            object.properties.extend(part.properties.clone());
            object.description = object.description.take().or_else(|| part.description.clone());
        }
        Some(RefOr::T(Schema::AllOf(all_of))) => {
            for inner in &all_of.items {
                merge_into(object, inner, components);
            }
        }
        _ => {}
    }
}

/// The document as served. utoipa 5.5 writes a link's fields in snake case
/// (`operation_id`, `request_body`); OpenAPI spells them `operationId`, `operationRef`
/// and `requestBody`, and a tool reading the links (Schemathesis' stateful phase) needs those.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let responses = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .filter_map(|operation| operation.get_mut("responses").and_then(|r| r.as_object_mut()))
            .flat_map(|responses| responses.values_mut());
        let links =
            responses.filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut())).flat_map(|l| l.values_mut());
        for link in links.filter_map(|link| link.as_object_mut()) {
            for (snake, camel) in
                [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
            {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
    doc
}

pub fn router() -> Router {
    Router::new().merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document()))
}
