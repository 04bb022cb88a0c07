//! What clients send: events (`POST /events`, `/events/batch`) and locally evaluated
//! exposures (`POST /exposures`), parsed and checked once, naming the field at fault.

use std::{borrow::Cow, collections::BTreeMap};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::*;

/// An event as a producer sends it to `POST /events` (or as one element of a batch).
#[derive(Debug, Deserialize)]
pub struct IncomingEvent<'a> {
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub event_type: Cow<'a, str>,
    #[serde(default, borrow)]
    pub properties: Option<&'a RawValue>,
    #[serde(default)]
    pub event_id: Option<Uuid>,
    #[serde(default, borrow)]
    pub timestamp: Option<IncomingTimestamp<'a>>,
}

impl<'de: 'a, 'a> IncomingEvent<'a> {
    /// Like `Deserialize`, but only from a JSON object: serde's derive would also accept
    /// an array of the fields in order (`["u1", "click"]`), which no client means.
    pub fn deserialize_object<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for ObjectVisitor<'a> {
            type Value = IncomingEvent<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                IncomingEvent::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// One event object, as the body of `POST /events`.
pub struct EventObject<'a>(pub IncomingEvent<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for EventObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IncomingEvent::deserialize_object(deserializer).map(EventObject)
    }
}

/// RFC 3339 text or epoch milliseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum IncomingTimestamp<'a> {
    Millis(i64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
    /// Milliseconds written as a JSON number with a fraction part (`1700000000000.0`): JSON
    /// (and JSON Schema's `integer`) make no difference when the fraction is zero.
    Number(f64),
}

/// A validation failure naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// The JSON text used when a client sends no properties.
fn empty_object() -> &'static RawValue {
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!()))
}

impl<'a> IncomingEvent<'a> {
    /// Applies the edge's rules and builds the envelope. `now` is the receive time.
    pub fn into_envelope(
        self,
        now: DateTime<Utc>,
        max_future_skew: std::time::Duration,
    ) -> Result<EventEnvelope<'a>, FieldError> {
        check_len("user_id", &self.user_id, MAX_USER_ID_CHARS)
            .map_err(|m| FieldError::new("user_id", format!("{m} (1 to {MAX_USER_ID_CHARS} characters)")))?;
        check_len("type", &self.event_type, MAX_TYPE_CHARS)
            .map_err(|m| FieldError::new("type", format!("{m} (1 to {MAX_TYPE_CHARS} characters)")))?;
        let properties = match self.properties {
            None => empty_object(),
            Some(raw) if raw.get() == "null" => empty_object(),
            Some(raw) if raw.get().starts_with('{') => raw,
            Some(_) => return Err(FieldError::new("properties", "must be a JSON object")),
        };
        if nesting_depth(properties.get()) > MAX_PROPERTIES_DEPTH {
            return Err(FieldError::new("properties", format!("nested deeper than {MAX_PROPERTIES_DEPTH} levels")));
        }
        let now_ms = now.timestamp_millis();
        let timestamp_ms = timestamp_ms(self.timestamp, now, max_future_skew)?;
        Ok(EventEnvelope {
            v: ENVELOPE_VERSION,
            event_id: self.event_id.unwrap_or_else(Uuid::now_v7),
            user_id: self.user_id,
            event_type: self.event_type,
            timestamp_ms,
            received_at_ms: now_ms,
            properties,
        })
    }
}

/// A client's `timestamp` in epoch milliseconds: the receive time `now` when absent, at
/// most `max_future_skew` ahead of it, not before 1970.
fn timestamp_ms(
    timestamp: Option<IncomingTimestamp<'_>>,
    now: DateTime<Utc>,
    max_future_skew: std::time::Duration,
) -> Result<i64, FieldError> {
    let now_ms = now.timestamp_millis();
    let timestamp_ms = match timestamp {
        None => now_ms,
        Some(IncomingTimestamp::Millis(ms)) => ms,
        Some(IncomingTimestamp::Number(ms)) if ms.fract() == 0.0 && ms.abs() < 2f64.powi(63) => ms as i64,
        Some(IncomingTimestamp::Number(_)) => {
            return Err(FieldError::new("timestamp", "epoch milliseconds must be a whole number"))
        }
        Some(IncomingTimestamp::Text(text)) => DateTime::parse_from_rfc3339(&text)
            .map_err(|_| FieldError::new("timestamp", "must be an RFC 3339 date-time or epoch milliseconds"))?
            .timestamp_millis(),
    };
    let skew_ms = i64::try_from(max_future_skew.as_millis()).unwrap_or(i64::MAX);
    if timestamp_ms > now_ms.saturating_add(skew_ms) {
        return Err(FieldError::new("timestamp", format!("more than {}s in the future", max_future_skew.as_secs())));
    }
    if timestamp_ms < 0 {
        return Err(FieldError::new("timestamp", "before 1970-01-01T00:00:00Z"));
    }
    Ok(timestamp_ms)
}

/// Only a JSON object of `T`'s fields: serde's derive would also accept an array of the
/// fields in order, which no client means.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<T, M::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData)).map(JsonObject)
    }
}

/// The body of `POST /exposures`: exposures a client assigned itself (local evaluation).
#[derive(Debug, Deserialize)]
pub struct IncomingExposures<'a> {
    #[serde(borrow)]
    pub exposures: Vec<JsonObject<IncomingExposure<'a>>>,
}

/// One exposure of `POST /exposures`. Every field may be absent or null here, so that a
/// missing one is reported by [`IncomingExposure::into_envelope`] with its name; wrong
/// types are reported by serde with their path.
#[derive(Debug, Deserialize)]
pub struct IncomingExposure<'a> {
    #[serde(default, borrow)]
    pub exposure_id: Option<Cow<'a, str>>,
    /// A number: JSON (and JSON Schema's `integer`) make no difference between `7` and `7.0`.
    #[serde(default)]
    pub experiment_id: Option<serde_json::Number>,
    #[serde(default, borrow)]
    pub variant: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub timestamp: Option<IncomingTimestamp<'a>>,
    /// Values as JSON text: strings, numbers and booleans are accepted.
    #[serde(default, borrow)]
    pub attributes: Option<BTreeMap<Cow<'a, str>, &'a RawValue>>,
}

impl<'a> IncomingExposure<'a> {
    /// Applies the edge's rules and builds the envelope (never `forced`: a client's own
    /// evaluation reports it). `now` is the receive time.
    pub fn into_envelope(
        self,
        now: DateTime<Utc>,
        max_future_skew: std::time::Duration,
    ) -> Result<ExposureEnvelope<'a>, FieldError> {
        let exposure_id = self.exposure_id.ok_or_else(|| FieldError::new("exposure_id", "required"))?;
        check_len("exposure_id", &exposure_id, MAX_EXPOSURE_ID_CHARS)
            .map_err(|m| FieldError::new("exposure_id", format!("{m} (1 to {MAX_EXPOSURE_ID_CHARS} characters)")))?;
        let number = self.experiment_id.ok_or_else(|| FieldError::new("experiment_id", "required"))?;
        let whole = number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(63)).map(|f| f as i64);
        let experiment_id = number.as_i64().or(whole).filter(|id| *id > 0);
        let experiment_id = experiment_id
            .ok_or_else(|| FieldError::new("experiment_id", format!("must be an integer from 1 to {}", i64::MAX)))?;
        let variant = self.variant.ok_or_else(|| FieldError::new("variant", "required"))?;
        if variant.trim().is_empty() || variant.contains('\0') || check_len("", &variant, MAX_VARIANT_CHARS).is_err() {
            let message = format!("1 to {MAX_VARIANT_CHARS} characters, not only blanks, no NUL");
            return Err(FieldError::new("variant", message));
        }
        let user_id = self.user_id.ok_or_else(|| FieldError::new("user_id", "required"))?;
        check_len("user_id", &user_id, MAX_USER_ID_CHARS)
            .map_err(|m| FieldError::new("user_id", format!("{m} (1 to {MAX_USER_ID_CHARS} characters)")))?;
        let exposed_at_ms = timestamp_ms(self.timestamp, now, max_future_skew)?;
        let incoming = self.attributes.unwrap_or_default();
        if incoming.len() > MAX_ATTRIBUTES {
            return Err(FieldError::new(
                "attributes",
                format!("{} attributes; at most {MAX_ATTRIBUTES}", incoming.len()),
            ));
        }
        let mut attributes = Attributes::new();
        for (name, raw) in incoming {
            let text = raw.get();
            let value = match text.as_bytes().first() {
                Some(b'"') => serde_json::from_str::<Cow<'a, str>>(text)
                    .map_err(|_| FieldError::new("attributes", format!("attribute {name:?}: not a valid string")))?,
                Some(b'-' | b'0'..=b'9') => Cow::Borrowed(text),
                _ if text == "true" || text == "false" => Cow::Borrowed(text),
                _ => {
                    let message = format!("attribute {name:?}: values are strings, numbers or booleans");
                    return Err(FieldError::new("attributes", message));
                }
            };
            attributes.insert(name, value);
        }
        check_attributes(&attributes)
            .map_err(|(name, rule)| FieldError::new("attributes", format!("attribute {name:?}: {rule}")))?;
        Ok(ExposureEnvelope {
            v: ENVELOPE_VERSION,
            experiment_id,
            variant,
            user_id,
            exposed_at_ms,
            forced: false,
            attributes,
            exposure_id: Some(exposure_id),
        })
    }
}
