//! The messages on our Kafka topics, defined once.
//!
//! `ingest` and `api` write them, `consumer` reads them. Both are JSON objects carrying a
//! version field `v`; a reader rejects versions it does not know (they go to the DLQ)
//! instead of guessing. Properties travel as the client's raw JSON text: it is validated
//! once at the edge and never re-serialised.

use std::{borrow::Cow, collections::BTreeMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

mod incoming;
pub mod properties;

pub use incoming::*;

/// Version of [`EventEnvelope`] and [`ExposureEnvelope`] written by this build.
pub const ENVELOPE_VERSION: u8 = 1;
/// Longest `user_id`, in characters (Unicode scalar values, as JSON Schema counts them).
pub const MAX_USER_ID_CHARS: usize = 256;
/// Longest event `type`, in characters.
pub const MAX_TYPE_CHARS: usize = 128;
/// Deepest nesting of objects and arrays accepted in `properties`.
pub const MAX_PROPERTIES_DEPTH: usize = 32;
/// Longest `exposure_id` (the client's idempotency key of an exposure), in characters.
pub const MAX_EXPOSURE_ID_CHARS: usize = 128;
/// Longest variant name, in characters (the api's rule for variant names).
pub const MAX_VARIANT_CHARS: usize = 100;
/// Most attributes stored with one exposure.
pub const MAX_ATTRIBUTES: usize = 50;
/// Longest attribute name, in characters.
pub const MAX_ATTRIBUTE_NAME_CHARS: usize = 128;
/// Longest attribute value, in characters.
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 1024;
/// Latest instant a ClickHouse `DateTime` can hold (2106-02-07).
const MAX_DATETIME_MS: i64 = u32::MAX as i64 * 1000;

/// One event in the `events` topic, keyed by `user_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventEnvelope<'a> {
    pub v: u8,
    pub event_id: Uuid,
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub event_type: Cow<'a, str>,
    /// When the event happened, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// When our edge received it, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// A JSON object, as the client sent it.
    #[serde(borrow)]
    pub properties: &'a RawValue,
}

impl PartialEq for EventEnvelope<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.v == other.v
            && self.event_id == other.event_id
            && self.user_id == other.user_id
            && self.event_type == other.event_type
            && self.timestamp_ms == other.timestamp_ms
            && self.received_at_ms == other.received_at_ms
            && self.properties.get() == other.properties.get()
    }
}

/// The user attributes stored with an exposure: names to text values, in name order.
pub type Attributes<'a> = BTreeMap<Cow<'a, str>, Cow<'a, str>>;

/// A user's first assignment to a variant, in the `exposures` topic, keyed by `user_id`.
///
/// `forced`, `attributes` and `exposure_id` came later within version 1: absent in a
/// message they take their defaults, and they are left out of a message when they hold
/// them, so a message of either build decodes in the other (serde ignores fields it does
/// not know).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExposureEnvelope<'a> {
    pub v: u8,
    pub experiment_id: i64,
    #[serde(borrow)]
    pub variant: Cow<'a, str>,
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    pub exposed_at_ms: i64,
    /// The user was pinned to the variant (a forced QA user), not assigned by the hash;
    /// analysis leaves such exposures out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forced: bool,
    /// The user's attributes at assignment (targeting), for breakdowns: at most
    /// [`MAX_ATTRIBUTES`], names of 1 to [`MAX_ATTRIBUTE_NAME_CHARS`] characters without
    /// NUL, values of at most [`MAX_ATTRIBUTE_VALUE_CHARS`].
    #[serde(default, borrow, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes<'a>,
    /// The client's id of this exposure (`POST /exposures`), 1 to
    /// [`MAX_EXPOSURE_ID_CHARS`] characters.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub exposure_id: Option<Cow<'a, str>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl<'a> ExposureEnvelope<'a> {
    /// An exposure with the fields every build knows; not forced, no attributes, no id.
    pub fn new(experiment_id: i64, variant: Cow<'a, str>, user_id: Cow<'a, str>, exposed_at_ms: i64) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            experiment_id,
            variant,
            user_id,
            exposed_at_ms,
            forced: false,
            attributes: Attributes::new(),
            exposure_id: None,
        }
    }
}

/// Why a message read from Kafka cannot be used; the consumer sends it to the DLQ.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("not a valid envelope: {0}")]
    Json(String),
    #[error("unsupported envelope version {0} (this build reads {ENVELOPE_VERSION})")]
    Version(u8),
    #[error("invalid field `{field}`: {message}")]
    Field { field: &'static str, message: &'static str },
}

impl<'a> EventEnvelope<'a> {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings, integers and already-valid raw JSON cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and re-checks the invariants the edge enforced, so that a foreign or
    /// corrupted message can never reach ClickHouse.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let event: Self = serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        if event.v != ENVELOPE_VERSION {
            return Err(DecodeError::Version(event.v));
        }
        check_len("user_id", &event.user_id, MAX_USER_ID_CHARS).map_err(field_err("user_id"))?;
        check_len("type", &event.event_type, MAX_TYPE_CHARS).map_err(field_err("type"))?;
        if !event.properties.get().starts_with('{') {
            return Err(DecodeError::Field { field: "properties", message: "must be a JSON object" });
        }
        for (field, ms) in [("timestamp_ms", event.timestamp_ms), ("received_at_ms", event.received_at_ms)] {
            if !(0..=MAX_DATETIME_MS).contains(&ms) {
                return Err(DecodeError::Field { field, message: "out of range" });
            }
        }
        Ok(event)
    }
}

impl<'a> ExposureEnvelope<'a> {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let exposure: Self = serde_json::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))?;
        if exposure.v != ENVELOPE_VERSION {
            return Err(DecodeError::Version(exposure.v));
        }
        check_len("user_id", &exposure.user_id, MAX_USER_ID_CHARS).map_err(field_err("user_id"))?;
        if exposure.variant.is_empty() {
            return Err(DecodeError::Field { field: "variant", message: "must not be empty" });
        }
        if exposure.experiment_id <= 0 {
            return Err(DecodeError::Field { field: "experiment_id", message: "must be positive" });
        }
        if !(0..=MAX_DATETIME_MS).contains(&exposure.exposed_at_ms) {
            return Err(DecodeError::Field { field: "exposed_at_ms", message: "out of range" });
        }
        if let Some(id) = &exposure.exposure_id {
            check_len("exposure_id", id, MAX_EXPOSURE_ID_CHARS).map_err(field_err("exposure_id"))?;
        }
        check_attributes(&exposure.attributes)
            .map_err(|(_, message)| DecodeError::Field { field: "attributes", message })?;
        Ok(exposure)
    }
}

/// The rules of [`ExposureEnvelope::attributes`]; on a failure, the attribute's name and
/// the broken rule.
pub fn check_attributes<'m>(attributes: &'m Attributes<'_>) -> Result<(), (&'m str, &'static str)> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(("", "more than 50 attributes"));
    }
    for (name, value) in attributes {
        if check_len("", name, MAX_ATTRIBUTE_NAME_CHARS).is_err() || name.contains('\0') {
            return Err((name, "attribute names are 1 to 128 characters without NUL"));
        }
        if value.len() > MAX_ATTRIBUTE_VALUE_CHARS && value.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS {
            return Err((name, "attribute values are at most 1024 characters"));
        }
    }
    Ok(())
}

fn field_err(field: &'static str) -> impl Fn(&'static str) -> DecodeError {
    move |message| DecodeError::Field { field, message }
}

/// 1 to `max` characters (the rule of `user_id` and `type`, wherever they arrive).
pub fn length_ok(value: &str, max: usize) -> bool {
    check_len("", value, max).is_ok()
}

fn check_len(_field: &str, value: &str, max: usize) -> Result<(), &'static str> {
    if value.is_empty() {
        Err("must not be empty")
    } else if value.len() > max && value.chars().count() > max {
        Err("too long")
    } else {
        Ok(())
    }
}

/// Removes the whitespace outside string literals of valid JSON text. ClickHouse's
/// `visitParam*` functions (the JSON functions ClickHouse 18.16 has) only read compact
/// JSON, so properties are stored compact.
pub fn compact_json(json: &str) -> String {
    let mut out = Vec::with_capacity(json.len());
    compact_json_into(json, &mut out);
    // Only whitespace bytes (ASCII) were left out of valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// [`compact_json`] appended to `out`, without allocating when the text is already compact
/// (most clients send it so).
pub fn compact_json_into(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t')) {
        out.extend_from_slice(bytes);
        return;
    }
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            in_string = b == b'"';
            out.push(b);
        }
    }
}

/// The deepest nesting of objects and arrays in valid JSON text.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in json.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z").expect("date").with_timezone(&Utc)
    }

    fn parse(json: &str) -> Result<EventEnvelope<'_>, FieldError> {
        let incoming: IncomingEvent = serde_json::from_str(json).expect("parses");
        incoming.into_envelope(now(), HOUR)
    }

    #[test]
    fn minimal_event_gets_defaults() {
        let e = parse(r#"{"user_id":"u1","type":"purchase"}"#).expect("valid");
        assert_eq!(e.properties.get(), "{}");
        assert_eq!(e.timestamp_ms, now().timestamp_millis());
        assert_eq!(e.received_at_ms, now().timestamp_millis());
        assert_eq!(e.event_id.get_version_num(), 7);
    }

    #[test]
    fn envelope_round_trips() {
        let e = parse(
            r#"{"user_id":"u\"1","type":"click","properties":{"a":[1,2],"b":"x"},
                "event_id":"0190b5a4-5d6e-7c3a-8f00-000000000001","timestamp":"2026-01-01T11:00:00+01:00"}"#,
        )
        .expect("valid");
        assert_eq!(e.timestamp_ms, now().timestamp_millis() - 2 * 3600 * 1000);
        let bytes = e.encode();
        let back = EventEnvelope::decode(&bytes).expect("decodes");
        assert_eq!(back, e);
        assert_eq!(back.user_id, "u\"1");
        assert_eq!(back.properties.get(), r#"{"a":[1,2],"b":"x"}"#);
    }

    #[test]
    fn epoch_millis_timestamp() {
        let e = parse(r#"{"user_id":"u","type":"t","timestamp":1767268800000}"#).expect("valid");
        assert_eq!(e.timestamp_ms, 1_767_268_800_000);
        let e = parse(r#"{"user_id":"u","type":"t","timestamp":1767268800000.0}"#).expect("a whole number");
        assert_eq!(e.timestamp_ms, 1_767_268_800_000);
        for fraction in ["1.5", "0.9999999999999999"] {
            let json = format!(r#"{{"user_id":"u","type":"t","timestamp":{fraction}}}"#);
            assert_eq!(parse(&json).expect_err(fraction).field, "timestamp", "{fraction} is not whole");
        }
    }

    #[test]
    fn rules_name_the_field() {
        let long_user = format!(r#"{{"user_id":"{}","type":"t"}}"#, "x".repeat(257));
        let long_type = format!(r#"{{"user_id":"u","type":"{}"}}"#, "x".repeat(129));
        let cases = [
            (r#"{"user_id":"","type":"t"}"#.to_owned(), "user_id"),
            (long_user, "user_id"),
            (r#"{"user_id":"u","type":""}"#.to_owned(), "type"),
            (long_type, "type"),
            (r#"{"user_id":"u","type":"t","properties":[1]}"#.to_owned(), "properties"),
            (r#"{"user_id":"u","type":"t","properties":"x"}"#.to_owned(), "properties"),
            (r#"{"user_id":"u","type":"t","timestamp":"yesterday"}"#.to_owned(), "timestamp"),
            (r#"{"user_id":"u","type":"t","timestamp":"2026-01-01T13:00:01Z"}"#.to_owned(), "timestamp"),
            (r#"{"user_id":"u","type":"t","timestamp":-1}"#.to_owned(), "timestamp"),
            (
                format!(r#"{{"user_id":"u","type":"t","properties":{}1{}}}"#, r#"{"a":"#.repeat(33), "}".repeat(33)),
                "properties",
            ),
        ];
        for (json, field) in cases {
            let err = parse(&json).expect_err(&json);
            assert_eq!(err.field, field, "{json}: {err}");
        }
        // exactly at the limits is fine
        let at_limit = format!(
            r#"{{"user_id":"{}","type":"{}","timestamp":"2026-01-01T13:00:00Z"}}"#,
            "u".repeat(256),
            "t".repeat(128)
        );
        parse(&at_limit).expect("limits are inclusive");
    }

    #[test]
    fn compact_json_keeps_strings_intact() {
        let raw = "{ \"a b\" : [1, 2],\n\t\"q\": \"x \\\" y\" , \"n\": { } }";
        let compact = compact_json(raw);
        assert_eq!(compact, r#"{"a b":[1,2],"q":"x \" y","n":{}}"#);
        let before: serde_json::Value = serde_json::from_str(raw).expect("json");
        let after: serde_json::Value = serde_json::from_str(&compact).expect("json");
        assert_eq!(before, after);
    }

    #[test]
    fn decode_rejects_foreign_messages() {
        assert!(matches!(EventEnvelope::decode(b"not json"), Err(DecodeError::Json(_))));
        let future = br#"{"v":2,"event_id":"0190b5a4-5d6e-7c3a-8f00-000000000001","user_id":"u","type":"t","timestamp_ms":1,"received_at_ms":1,"properties":{}}"#;
        assert_eq!(EventEnvelope::decode(future), Err(DecodeError::Version(2)));
        let empty_user = br#"{"v":1,"event_id":"0190b5a4-5d6e-7c3a-8f00-000000000001","user_id":"","type":"t","timestamp_ms":1,"received_at_ms":1,"properties":{}}"#;
        assert!(matches!(EventEnvelope::decode(empty_user), Err(DecodeError::Field { field: "user_id", .. })));
        let exposure = ExposureEnvelope::new(3, "a".into(), "u".into(), 5);
        assert_eq!(ExposureEnvelope::decode(&exposure.encode()), Ok(exposure));
    }

    /// The exposure fields of version 1 before `forced`, `attributes` and `exposure_id`.
    #[derive(Debug, Deserialize, PartialEq)]
    struct OldExposure {
        v: u8,
        experiment_id: i64,
        variant: String,
        user_id: String,
        exposed_at_ms: i64,
    }

    #[test]
    fn exposures_of_either_build_decode_in_the_other() {
        let old = br#"{"v":1,"experiment_id":3,"variant":"a","user_id":"u","exposed_at_ms":5}"#;
        let decoded = ExposureEnvelope::decode(old).expect("an old message decodes");
        assert_eq!(decoded, ExposureEnvelope::new(3, "a".into(), "u".into(), 5));
        assert_eq!(decoded.encode(), old, "defaults are left out: the message is the old one byte for byte");

        let mut new = ExposureEnvelope::new(3, "a".into(), "u".into(), 5);
        new.forced = true;
        new.exposure_id = Some("x-1".into());
        new.attributes.insert("country".into(), "DE".into());
        new.attributes.insert("age".into(), "41".into());
        let bytes = new.encode();
        assert_eq!(
            std::str::from_utf8(&bytes).expect("utf-8"),
            r#"{"v":1,"experiment_id":3,"variant":"a","user_id":"u","exposed_at_ms":5,"forced":true,"attributes":{"age":"41","country":"DE"},"exposure_id":"x-1"}"#
        );
        assert_eq!(ExposureEnvelope::decode(&bytes), Ok(new));
        let seen_by_old: OldExposure = serde_json::from_slice(&bytes).expect("an old reader ignores the new fields");
        assert_eq!(
            seen_by_old,
            OldExposure { v: 1, experiment_id: 3, variant: "a".into(), user_id: "u".into(), exposed_at_ms: 5 }
        );
    }

    #[test]
    fn decode_checks_the_new_exposure_fields() {
        let with = |extra: &str| {
            format!(r#"{{"v":1,"experiment_id":3,"variant":"a","user_id":"u","exposed_at_ms":5,{extra}}}"#)
        };
        let many: Vec<String> = (0..51).map(|i| format!(r#""k{i}":"v""#)).collect();
        let cases = [
            (with(r#""exposure_id":"""#), "exposure_id"),
            (with(&format!(r#""exposure_id":"{}""#, "x".repeat(129))), "exposure_id"),
            (with(r#""attributes":{"":"v"}"#), "attributes"),
            (with(r#""attributes":{"a\u0000b":"v"}"#), "attributes"),
            (with(&format!(r#""attributes":{{"k":"{}"}}"#, "v".repeat(1025))), "attributes"),
            (with(&format!(r#""attributes":{{{}}}"#, many.join(","))), "attributes"),
        ];
        for (json, field) in cases {
            match ExposureEnvelope::decode(json.as_bytes()) {
                Err(DecodeError::Field { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        let at_limits = with(&format!(
            r#""exposure_id":"{}","attributes":{{"{}":"{}"}}"#,
            "x".repeat(128),
            "n".repeat(128),
            "v".repeat(1024)
        ));
        ExposureEnvelope::decode(at_limits.as_bytes()).expect("limits are inclusive");
    }

    fn exposure(json: &str) -> Result<ExposureEnvelope<'_>, FieldError> {
        let JsonObject(incoming): JsonObject<IncomingExposure> = serde_json::from_str(json).expect("parses");
        incoming.into_envelope(now(), HOUR)
    }

    #[test]
    fn an_incoming_exposure_becomes_an_envelope() {
        let e = exposure(
            r#"{"exposure_id":"e1","experiment_id":7,"variant":"b","user_id":"u1","timestamp":"2026-01-01T11:00:00Z",
                "attributes":{"country":"DE","age":41,"ratio":0.50,"beta":true,"q":"a\"b"}}"#,
        )
        .expect("valid");
        assert_eq!((e.experiment_id, e.variant.as_ref(), e.user_id.as_ref()), (7, "b", "u1"));
        assert_eq!(e.exposed_at_ms, now().timestamp_millis() - 3600 * 1000);
        assert_eq!((e.exposure_id.as_deref(), e.forced), (Some("e1"), false));
        let attributes: Vec<(&str, &str)> = e.attributes.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        assert_eq!(
            attributes,
            [("age", "41"), ("beta", "true"), ("country", "DE"), ("q", "a\"b"), ("ratio", "0.50")],
            "numbers and booleans as their JSON text"
        );
        assert_eq!(ExposureEnvelope::decode(&e.encode()), Ok(e.clone()));

        let e = exposure(r#"{"exposure_id":"e1","experiment_id":7,"variant":"b","user_id":"u1","attributes":null}"#)
            .expect("valid");
        assert_eq!(e.exposed_at_ms, now().timestamp_millis(), "the receive time when absent");
        assert!(e.attributes.is_empty());
        let e = exposure(r#"{"exposure_id":"e1","experiment_id":7.0,"variant":"b","user_id":"u1"}"#).expect("valid");
        assert_eq!(e.experiment_id, 7, "a whole number");
    }

    #[test]
    fn incoming_exposure_rules_name_the_field() {
        let base = r#""exposure_id":"e","experiment_id":1,"variant":"a","user_id":"u""#;
        let with = |extra: &str| format!("{{{base},{extra}}}");
        let without = |field: &str| {
            let kept: Vec<&str> = base.split(',').filter(|kv| !kv.starts_with(&format!("\"{field}\""))).collect();
            format!("{{{}}}", kept.join(","))
        };
        let many: Vec<String> = (0..51).map(|i| format!(r#""k{i}":1"#)).collect();
        let cases = [
            (without("exposure_id"), "exposure_id"),
            (without("experiment_id"), "experiment_id"),
            (without("variant"), "variant"),
            (without("user_id"), "user_id"),
            (r#"{"exposure_id":"","experiment_id":1,"variant":"a","user_id":"u"}"#.to_owned(), "exposure_id"),
            (
                format!(r#"{{"exposure_id":"{}","experiment_id":1,"variant":"a","user_id":"u"}}"#, "e".repeat(129)),
                "exposure_id",
            ),
            (r#"{"exposure_id":"e","experiment_id":0,"variant":"a","user_id":"u"}"#.to_owned(), "experiment_id"),
            (r#"{"exposure_id":"e","experiment_id":1.5,"variant":"a","user_id":"u"}"#.to_owned(), "experiment_id"),
            (
                r#"{"exposure_id":"e","experiment_id":9223372036854775808,"variant":"a","user_id":"u"}"#.to_owned(),
                "experiment_id",
            ),
            (r#"{"exposure_id":"e","experiment_id":1,"variant":" ","user_id":"u"}"#.to_owned(), "variant"),
            (
                format!(r#"{{"exposure_id":"e","experiment_id":1,"variant":"{}","user_id":"u"}}"#, "v".repeat(101)),
                "variant",
            ),
            (r#"{"exposure_id":"e","experiment_id":1,"variant":"a","user_id":""}"#.to_owned(), "user_id"),
            (
                format!(r#"{{"exposure_id":"e","experiment_id":1,"variant":"a","user_id":"{}"}}"#, "u".repeat(257)),
                "user_id",
            ),
            (with(r#""timestamp":"2026-01-01T13:00:01Z""#), "timestamp"),
            (with(r#""timestamp":-1"#), "timestamp"),
            (with(r#""attributes":{"a":null}"#), "attributes"),
            (with(r#""attributes":{"a":[1]}"#), "attributes"),
            (with(r#""attributes":{"a":{}}"#), "attributes"),
            (with(r#""attributes":{"":"x"}"#), "attributes"),
            (with(r#""attributes":{"a\u0000":"x"}"#), "attributes"),
            (with(&format!(r#""attributes":{{"{}":"x"}}"#, "n".repeat(129))), "attributes"),
            (with(&format!(r#""attributes":{{"a":"{}"}}"#, "x".repeat(1025))), "attributes"),
            (with(&format!(r#""attributes":{{{}}}"#, many.join(","))), "attributes"),
        ];
        for (json, field) in cases {
            let err = exposure(&json).expect_err(&json);
            assert_eq!(err.field, field, "{json}: {err}");
        }
        let at_limits = format!(
            r#"{{"exposure_id":"{}","experiment_id":1,"variant":"{}","user_id":"{}","attributes":{{{}}}}}"#,
            "e".repeat(128),
            "v".repeat(100),
            "u".repeat(256),
            (0..50).map(|i| format!(r#""{i:0>128}":"{}""#, "x".repeat(1024))).collect::<Vec<_>>().join(",")
        );
        assert_eq!(exposure(&at_limits).expect("limits are inclusive").attributes.len(), 50);
        assert!(serde_json::from_str::<JsonObject<IncomingExposure>>(r#"["e",1,"a","u"]"#).is_err(), "objects only");
    }
}
