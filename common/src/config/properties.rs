//! `kafka.properties`: any librdkafka property, from TOML or from the environment.
//!
//! figment nests environment variables on `.` as well as on `__`, so the previously
//! documented `ABTEST_KAFKA__PROPERTIES__SECURITY.PROTOCOL=SSL` became a map
//! `{security: {protocol: SSL}}` and failed to load, and it parses values (`0123` -> 123,
//! `0.10` -> 0.1, `true` -> a bool) where librdkafka wants strings. Hence:
//!
//! - environment: `ABTEST_KAFKA__PROPERTIES__SSL_ENDPOINT_IDENTIFICATION_ALGORITHM=https`,
//!   the property name upper-cased with `_` for `.` (`__` works too), so every name is a
//!   valid shell variable; the value is taken verbatim. These variables are read by
//!   [`from_env`] and skipped by the general `ABTEST_` provider.
//! - TOML: `[kafka.properties]` with quoted (`"security.protocol" = "SSL"`) or bare dotted
//!   keys (`security.protocol = "SSL"`, which TOML nests); numbers and booleans are turned
//!   back into strings.
//!
//! Both are normalised to librdkafka's dotted lower-case names, except its two settable
//! names that contain `_` (`log_level`, `enabled_events`).

use std::{collections::BTreeMap, fmt};

use figment::{
    providers::{Env, Serialized},
    value::Value,
};
use serde::{de, Deserialize, Deserializer, Serialize};

/// Variables of one librdkafka property each.
pub const ENV_PREFIX: &str = "ABTEST_KAFKA__PROPERTIES__";

/// librdkafka's settable properties whose names contain `_` (2.12).
const UNDERSCORE_NAMES: &[&str] = &["log_level", "enabled_events"];

/// Words that make a property's value a secret in `Debug` output
/// (`sasl.password`, `ssl.key.pem`, `sasl.oauthbearer.client.secret`, ...).
const SECRET_WORDS: &[&str] = &["password", "secret", "key", "token"];

/// librdkafka properties by their dotted names, values as librdkafka takes them (strings).
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(normalise(name), value.into());
    }

    /// Is this property's value a secret (kept out of `Debug` output)?
    pub fn is_secret(name: &str) -> bool {
        SECRET_WORDS.iter().any(|w| name.contains(w))
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.0 {
            if Self::is_secret(k) {
                map.entry(k, &"***");
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

/// `SSL_ENDPOINT_IDENTIFICATION_ALGORITHM`, `ssl.endpoint.identification.algorithm` and
/// `SSL__ENDPOINT__...` are all `ssl.endpoint.identification.algorithm`.
pub fn normalise(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if UNDERSCORE_NAMES.contains(&name.as_str()) {
        return name;
    }
    name.split(['_', '.']).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(".")
}

/// The `ABTEST_KAFKA__PROPERTIES__*` variables, verbatim, as a figment layer.
pub fn from_env() -> Serialized<BTreeMap<String, String>> {
    let raw: BTreeMap<String, String> =
        Env::prefixed(ENV_PREFIX).iter().map(|(k, v)| (normalise(k.as_str()), v)).collect();
    Serialized::default("kafka.properties", raw)
}

/// Is this (lower-cased, `.`-nested) key one of the property variables [`from_env`] reads?
pub fn is_property_variable(key: &str) -> bool {
    key.to_ascii_lowercase().starts_with("kafka.properties.")
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) -> Result<(), String> {
    let text = match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out)?;
            }
            return Ok(());
        }
        Value::Empty(..) => return Ok(()),
        Value::Array(..) => return Err(format!("`{prefix}`: a list is not a librdkafka value (write `a,b`)")),
        Value::String(_, s) => s.clone(),
        Value::Char(_, c) => c.to_string(),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|u| u.to_string())
            .or_else(|| n.to_i128().map(|i| i.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .ok_or_else(|| format!("`{prefix}`: not a number librdkafka takes"))?,
    };
    out.insert(normalise(prefix), text);
    Ok(())
}

impl<'de> Deserialize<'de> for KafkaProperties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = <Value as Deserialize>::deserialize(d)?;
        if !matches!(value, Value::Dict(..) | Value::Empty(..)) {
            return Err(de::Error::custom("must be a table of librdkafka properties"));
        }
        let mut out = BTreeMap::new();
        flatten("", &value, &mut out).map_err(de::Error::custom)?;
        Ok(KafkaProperties(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_to_librdkafka_spelling() {
        assert_eq!(normalise("SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"), "ssl.endpoint.identification.algorithm");
        assert_eq!(normalise("API__VERSION__REQUEST"), "api.version.request");
        assert_eq!(normalise("security.protocol"), "security.protocol");
        assert_eq!(normalise("LOG_LEVEL"), "log_level");
        assert_eq!(normalise("ENABLED_EVENTS"), "enabled_events");
    }

    #[test]
    fn secret_values_are_hidden_in_debug_output() {
        let mut p = KafkaProperties::default();
        p.insert("sasl.oauthbearer.client.secret", "s3cr3t-value");
        p.insert("ssl.key.password", "keypass-value");
        p.insert("client.id", "visible-id");
        let shown = format!("{p:?}");
        assert!(!shown.contains("s3cr3t-value") && !shown.contains("keypass-value"), "{shown}");
        assert!(shown.contains("visible-id"), "{shown}");
    }
}
