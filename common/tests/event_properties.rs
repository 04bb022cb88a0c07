//! Property tests of the event parser and validator: whatever bytes a client sends, the
//! edge never panics, and whatever it accepts satisfies every rule and survives the trip
//! through Kafka unchanged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::event::{
    check_attributes, EventEnvelope, EventObject, ExposureEnvelope, IncomingExposures, JsonObject, MAX_TYPE_CHARS,
    MAX_USER_ID_CHARS,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").expect("date").with_timezone(&Utc)
}

/// Runs the edge's pipeline on raw bytes: parse, validate, encode, decode.
fn check(bytes: &[u8]) {
    let Ok(EventObject(incoming)) = serde_json::from_slice::<EventObject>(bytes) else { return };
    let Ok(envelope) = incoming.into_envelope(now(), Duration::from_secs(3600)) else { return };
    assert!((1..=MAX_USER_ID_CHARS).contains(&envelope.user_id.chars().count()));
    assert!((1..=MAX_TYPE_CHARS).contains(&envelope.event_type.chars().count()));
    assert!(envelope.timestamp_ms >= 0 && envelope.timestamp_ms <= now().timestamp_millis() + 3_600_000);
    let properties: Value = serde_json::from_str(envelope.properties.get()).expect("properties are JSON");
    assert!(properties.is_object());
    let encoded = envelope.encode();
    let decoded = EventEnvelope::decode(&encoded).expect("an accepted event always decodes");
    assert_eq!(decoded, envelope);
}

/// `POST /exposures`'s pipeline on raw bytes: whatever is accepted keeps every rule and
/// survives the trip through Kafka unchanged.
fn check_exposures(bytes: &[u8]) {
    let Ok(JsonObject(IncomingExposures { exposures })) =
        serde_json::from_slice::<JsonObject<IncomingExposures>>(bytes)
    else {
        return;
    };
    for JsonObject(incoming) in exposures {
        let Ok(envelope) = incoming.into_envelope(now(), Duration::from_secs(3600)) else { continue };
        assert!((1..=MAX_USER_ID_CHARS).contains(&envelope.user_id.chars().count()));
        assert!(envelope.experiment_id > 0 && !envelope.forced);
        assert!(envelope.exposed_at_ms >= 0 && envelope.exposed_at_ms <= now().timestamp_millis() + 3_600_000);
        assert!(check_attributes(&envelope.attributes).is_ok());
        let encoded = envelope.encode();
        assert_eq!(ExposureEnvelope::decode(&encoded).expect("an accepted exposure always decodes"), envelope);
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        check(value.to_string().as_bytes());
    }

    #[test]
    fn events_with_arbitrary_fields_never_panic(
        user_id in prop_oneof![".{0,300}".prop_map(Value::from), json_value()],
        event_type in prop_oneof![".{0,200}".prop_map(Value::from), json_value()],
        properties in json_value(),
        timestamp in prop_oneof![any::<i64>().prop_map(Value::from), ".{0,40}".prop_map(Value::from), Just(Value::Null)],
    ) {
        check(json!({"user_id": user_id, "type": event_type, "properties": properties, "timestamp": timestamp}).to_string().as_bytes());
    }

    #[test]
    fn exposures_with_arbitrary_fields_never_panic(
        exposure_id in prop_oneof![".{0,140}".prop_map(Value::from), json_value()],
        experiment_id in prop_oneof![any::<i64>().prop_map(Value::from), any::<f64>().prop_map(Value::from), json_value()],
        variant in prop_oneof!["\\PC{0,110}".prop_map(Value::from), ".{0,3}".prop_map(Value::from), json_value()],
        user_id in prop_oneof![".{0,300}".prop_map(Value::from), json_value()],
        timestamp in prop_oneof![any::<i64>().prop_map(Value::from), ".{0,40}".prop_map(Value::from), Just(Value::Null)],
        attributes in prop_oneof![
            prop::collection::btree_map(".{0,130}", json_value(), 0..55).prop_map(|m| Value::Object(m.into_iter().collect())),
            json_value(),
        ],
    ) {
        let exposure = json!({"exposure_id": exposure_id, "experiment_id": experiment_id, "variant": variant,
                              "user_id": user_id, "timestamp": timestamp, "attributes": attributes});
        check_exposures(json!({ "exposures": [exposure] }).to_string().as_bytes());
    }

    #[test]
    fn arbitrary_json_exposures_never_panic(value in json_value()) {
        check_exposures(json!({ "exposures": [value] }).to_string().as_bytes());
        check_exposures(value.to_string().as_bytes());
    }

    #[test]
    fn valid_events_are_accepted_and_round_trip(
        user_id in "\\PC{1,60}",
        event_type in "[a-z_]{1,30}",
        properties in prop::collection::btree_map("\\PC{0,10}", json_value(), 0..5),
        offset_ms in -86_400_000_000i64..3_600_000,
    ) {
        let body = json!({"user_id": user_id, "type": event_type, "properties": properties,
                          "timestamp": now().timestamp_millis() + offset_ms});
        let bytes = body.to_string();
        let EventObject(incoming) = serde_json::from_str::<EventObject>(&bytes).expect("parses");
        let envelope = incoming.into_envelope(now(), Duration::from_secs(3600)).expect("valid");
        prop_assert_eq!(envelope.user_id.as_ref(), user_id.as_str());
        // The client's properties text travels byte for byte (no float re-formatting).
        let sent = serde_json::to_string(&Value::Object(properties.into_iter().collect())).expect("json");
        prop_assert_eq!(envelope.properties.get(), sent.as_str());
        check(bytes.as_bytes());
    }
}
