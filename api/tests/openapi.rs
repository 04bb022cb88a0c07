//! The OpenAPI document states every answer and every rule the API applies (what
//! `scripts/schemathesis` then checks against the running API). The document served at
//! `/openapi.json` is `document()` (asserted in `api.rs`); no stack is needed here.

use std::collections::BTreeSet;

use serde_json::{json, Value};

fn doc() -> Value {
    api::routes::openapi::document()
}

/// `(METHOD, path, operation)` for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            out.push((method.to_uppercase(), path.clone(), operation.clone()));
        }
    }
    out
}

fn response_ref(operation: &Value, status: &str) -> Option<String> {
    operation["responses"][status]["$ref"].as_str().map(|r| r.trim_start_matches("#/components/responses/").to_owned())
}

#[test]
fn every_operation_lists_the_errors_it_can_answer() {
    let doc = doc();
    let ops = operations(&doc);
    assert_eq!(ops.len(), 21, "{:?}", ops.iter().map(|(m, p, _)| format!("{m} {p}")).collect::<Vec<_>>());
    for (method, path, op) in &ops {
        let what = format!("{method} {path}");
        assert_eq!(op["security"], json!([{"bearer": []}]), "{what}");
        // Every route is behind the key, and every one uses Postgres, ClickHouse or Kafka
        // within the request timeout.
        assert_eq!(response_ref(op, "401").as_deref(), Some("Unauthorized"), "{what}");
        assert_eq!(response_ref(op, "503").as_deref(), Some("Unavailable"), "{what}");
        // A 400 wherever the client sends something: parameters or a body.
        let parameters = op["parameters"].as_array().map(|p| p.iter().any(|p| p["in"] != "header"));
        let has_input = parameters.unwrap_or(false) || op.get("requestBody").is_some();
        assert_eq!(response_ref(op, "400").as_deref(), has_input.then_some("BadRequest"), "{what}");
        let has_id = path.contains("{id}") || path.contains("{key}");
        assert_eq!(response_ref(op, "404").is_some(), has_id, "{what}: 404 exactly where there is an id");
        let has_body = op.get("requestBody").is_some();
        assert_eq!(has_body, method == "POST" || method == "PATCH", "{what}");
        assert_eq!(response_ref(op, "413").as_deref(), has_body.then_some("PayloadTooLarge"), "{what}");
        assert_eq!(response_ref(op, "415").as_deref(), has_body.then_some("UnsupportedMediaType"), "{what}");
        // New assignments of a paused experiment; layer ranges taken; a layer or metric key taken.
        let conflict = path == "/experiments/{id}/assignment/{user_id}"
            || (path.starts_with("/experiments") && (method == "POST" || method == "PATCH"))
            || ((path == "/layers" || path == "/metrics") && method == "POST");
        assert_eq!(response_ref(op, "409").as_deref(), conflict.then_some("Conflict"), "{what}");
        let success: Vec<&String> =
            op["responses"].as_object().expect("responses").keys().filter(|s| s.starts_with('2')).collect();
        assert_eq!(success.len(), 1, "{what}: one success status");
        assert!(op["operationId"].is_string(), "{what}");
    }
    let ids: BTreeSet<&str> = ops.iter().filter_map(|(_, _, op)| op["operationId"].as_str()).collect();
    assert_eq!(ids.len(), ops.len(), "operationIds are unique");
    let responses = &doc["components"]["responses"];
    assert_eq!(responses["Unauthorized"]["headers"]["WWW-Authenticate"]["schema"]["type"], "string");
    assert_eq!(responses["Unavailable"]["headers"]["Retry-After"]["schema"]["type"], "integer");
    for (name, response) in responses.as_object().expect("responses") {
        assert_eq!(
            response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
            "{name}"
        );
    }
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

fn param<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    let params = doc["paths"][path][method]["parameters"].as_array().expect("parameters");
    &params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{method} {path}: no {name}"))["schema"]
}

#[test]
fn request_rules_are_constraints_or_stated_in_words() {
    let doc = doc();
    let new = &schema(&doc, "NewExperiment")["properties"];
    assert_eq!((&new["name"]["minLength"], &new["name"]["maxLength"]), (&json!(1), &json!(200)));
    assert_eq!(new["name"]["pattern"].as_str(), Some(api::domain::experiment::NAME_PATTERN));
    assert_eq!(new["description"]["pattern"].as_str(), Some(api::domain::experiment::TEXT_PATTERN));
    assert_eq!((&new["variants"]["minItems"], &new["variants"]["maxItems"]), (&json!(2), &json!(20)));
    let variant = &schema(&doc, "NewVariant")["properties"];
    assert_eq!(variant["name"]["maxLength"], 100);
    let allocation = &variant["allocation_percent"];
    assert_eq!((&allocation["exclusiveMinimum"], &allocation["maximum"]), (&json!(0), &json!(100)));
    assert_eq!(allocation["multipleOf"], 0.01);
    // What JSON Schema cannot say is said in words (and configured in schemathesis.toml).
    let described = |name: &str| schema(&doc, name)["description"].as_str().unwrap_or_default().to_owned();
    assert!(described("NewExperiment").contains("sum to exactly 100"), "{}", described("NewExperiment"));
    assert!(described("NewExperiment").contains("unique"));
    assert!(described("ExperimentPatch").contains("exactly the experiment's variants"));
    assert!(described("EventSchema").contains("max_future_skew"));
    let assign = &doc["paths"]["/experiments/{id}/assignment/{user_id}"]["get"];
    assert!(assign["description"].as_str().unwrap_or_default().contains("only a running experiment assigns new users"));

    let event = schema(&doc, "EventSchema");
    assert_eq!(event["required"], json!(["user_id", "type"]));
    assert_eq!(event["properties"]["user_id"]["maxLength"], 256);
    assert_eq!(event["properties"]["type"]["maxLength"], 128);
    assert_eq!(event["properties"]["event_id"]["format"], "uuid");
    let body = &doc["paths"]["/events/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/EventBatch");
    let batch = schema(&doc, "EventBatch");
    assert_eq!((&batch["minItems"], &batch["maxItems"]), (&json!(1), &json!(10_000)));
    assert_eq!(batch["items"]["$ref"], "#/components/schemas/EventSchema");

    let body = &doc["paths"]["/exposures"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/ExposureBatchSchema");
    let batch = schema(&doc, "ExposureBatchSchema");
    assert_eq!(batch["required"], json!(["exposures"]));
    let items = &batch["properties"]["exposures"];
    assert_eq!((&items["minItems"], &items["maxItems"]), (&json!(1), &json!(10_000)));
    assert_eq!(items["items"]["$ref"], "#/components/schemas/ExposureSchema");
    let exposure = schema(&doc, "ExposureSchema");
    assert_eq!(exposure["required"], json!(["exposure_id", "experiment_id", "variant", "user_id"]));
    let p = &exposure["properties"];
    assert_eq!((&p["exposure_id"]["minLength"], &p["exposure_id"]["maxLength"]), (&json!(1), &json!(128)));
    assert_eq!(p["experiment_id"]["minimum"], 1);
    assert_eq!(
        (&p["variant"]["maxLength"], p["variant"]["pattern"].as_str()),
        (&json!(100), Some(api::domain::experiment::NAME_PATTERN))
    );
    assert_eq!(p["user_id"]["maxLength"], 256);
    let attributes = &p["attributes"]["oneOf"][0];
    assert_eq!((&attributes["maxProperties"], &attributes["propertyNames"]["maxLength"]), (&json!(50), &json!(128)));
    assert_eq!(attributes["additionalProperties"]["oneOf"][0]["maxLength"], 1024);
    assert!(described("ExposureSchema").contains("max_future_skew"));

    for path in ["/experiments/{id}", "/experiments/{id}/assignment/{user_id}", "/experiments/{id}/results"] {
        let id = param(&doc, path, "get", "id");
        assert_eq!((&id["minimum"], &id["maximum"]), (&json!(1), &json!(i64::MAX)), "{path}");
    }
    let user_id = param(&doc, "/experiments/{id}/assignment/{user_id}", "get", "user_id");
    assert_eq!((&user_id["minLength"], &user_id["maxLength"]), (&json!(1), &json!(256)));
    assert_eq!(param(&doc, "/experiments", "get", "after")["maximum"], json!(i64::MAX));
    let limit = param(&doc, "/experiments", "get", "limit");
    assert_eq!((&limit["minimum"], &limit["maximum"]), (&json!(1), &json!(200)));
    let lift = param(&doc, "/experiments/{id}/results", "get", "target_lift");
    assert_eq!(lift["anyOf"][0]["exclusiveMaximum"], 0, "target_lift is never 0: {lift}");
    assert_eq!(lift["anyOf"][1]["exclusiveMinimum"], 0, "target_lift is never 0: {lift}");
    assert_eq!(param(&doc, "/experiments/{id}/results", "get", "correction")["enum"], json!(["holm", "bh", "none"]));
}

#[test]
fn response_schemas_are_exactly_what_serde_writes() {
    let doc = doc();
    let requests = [
        "NewExperiment",
        "NewVariant",
        "ExperimentPatch",
        "EventSchema",
        "LayerAsk",
        "NewLayer",
        "NewHoldout",
        "AssignmentRequest",
        "ExposureBatchSchema",
        "ExposureSchema",
    ];
    // The catalog's bodies refuse unknown fields (a misspelt `window_hours` must not pass
    // unnoticed) and may leave optional ones out.
    let closed_requests = ["NewMetric", "MetricPatch", "ExperimentMetrics", "Guardrail", "Denominator"];
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        let Some(properties) = schema["properties"].as_object() else { continue };
        if requests.contains(&name.as_str()) {
            assert!(schema.get("additionalProperties").is_none(), "{name}: unknown fields are ignored");
            continue;
        }
        if closed_requests.contains(&name.as_str()) {
            assert_eq!(schema["additionalProperties"], false, "{name}: unknown fields are refused");
            continue;
        }
        assert_eq!(schema["additionalProperties"], false, "{name}");
        let required: BTreeSet<&str> =
            schema["required"].as_array().expect("required").iter().filter_map(|r| r.as_str()).collect();
        let all: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
        let omitted: Vec<&&str> = all.difference(&required).collect();
        let expected: Vec<&&str> = if name == "ErrorBody" { vec![&"field"] } else { vec![] };
        assert_eq!(omitted, expected, "{name}: every field is written, null when empty");
    }
    let listed = schema(&doc, "ListedExperiment");
    assert!(
        listed["properties"]["exposed_users"]["type"] == json!(["integer", "null"])
            && listed["properties"]["id"].is_object()
    );
    assert_eq!(schema(&doc, "ErrorBody")["properties"]["field"]["type"], "string", "absent, never null");
    let codes = schema(&doc, "ErrorCode")["enum"].as_array().expect("enum").clone();
    for code in ["unauthorized", "not_found", "conflict", "payload_too_large", "unsupported_media_type", "unavailable"]
    {
        assert!(codes.contains(&json!(code)), "{code}");
    }
    assert_eq!(schema(&doc, "Status")["enum"], json!(["running", "paused", "stopped"]));
    assert_eq!(schema(&doc, "Significance")["enum"], json!(["sequential", "fixed_horizon"]));
    assert_eq!(
        schema(&doc, "WarningCode")["enum"],
        json!([
            "sample_ratio_mismatch",
            "zero_conversions",
            "small_sample",
            "non_positive_baseline",
            "no_variance",
            "inconsistent_counts"
        ])
    );
    let experiment = &schema(&doc, "Experiment")["properties"];
    assert_eq!(
        (&experiment["created_at"]["format"], &experiment["description"]["type"]),
        (&json!("date-time"), &json!(["string", "null"]))
    );
    assert_eq!(schema(&doc, "Accepted")["properties"]["accepted"]["minimum"], 1);
}

#[test]
fn links_lead_from_a_new_experiment_to_its_operations() {
    let doc = doc();
    let ids: BTreeSet<String> =
        operations(&doc).iter().filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned)).collect();
    let links = doc["paths"]["/experiments"]["post"]["responses"]["201"]["links"].as_object().expect("links").clone();
    let targets: BTreeSet<&str> = links.values().filter_map(|l| l["operationId"].as_str()).collect();
    assert_eq!(
        targets,
        BTreeSet::from(["get_experiment", "patch_experiment", "get_assignment", "get_results", "get_timeseries"])
    );
    for (name, link) in &links {
        assert!(ids.contains(link["operationId"].as_str().unwrap_or_default()), "{name}");
        assert_eq!(link["parameters"]["id"], "$response.body#/id", "{name}");
        assert!(link.get("operation_id").is_none() && link.get("request_body").is_none(), "{name}: camelCase keys");
    }
    assert_eq!(links["PatchExperiment"]["requestBody"], json!({"variants": "$response.body#/variants"}));
}
