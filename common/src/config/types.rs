//! Value types of the configuration: each parses and checks itself, so a bad value is
//! rejected with its key named (figment adds the key to a type's error).

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A string that never shows up in logs or `Debug` output.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// API keys: a TOML array (`["k1", "k2"]`), or one key written as it is. Reading a lone
/// key as a list keeps it out of the "expected a sequence" error, which would quote it.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<String>),
    }
    match Form::deserialize(d) {
        Ok(Form::One(key)) => Ok(vec![Secret::new(key)]),
        Ok(Form::Many(keys)) => Ok(keys.into_iter().map(Secret::new).collect()),
        Err(_) => Err(de::Error::custom("must be a list of keys such as [\"k1\", \"k2\"] (value not shown: a secret)")),
    }
}

/// Kafka bootstrap servers: `host:port` entries, written as a TOML array or as one
/// comma-separated string (`ABTEST_KAFKA__BROKERS=k1:9092,k2:9092`, the form every Kafka
/// tool uses); each entry is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers(Vec<String>);

impl Brokers {
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let list: Vec<String> =
            entries.iter().map(|e| e.as_ref().trim().to_owned()).filter(|e| !e.is_empty()).collect();
        if list.is_empty() {
            return Err("must list at least one host:port".into());
        }
        for entry in &list {
            let (host, port) = entry.rsplit_once(':').ok_or_else(|| format!("`{entry}` is not host:port"))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("`{entry}` is not host:port with a port from 1 to 65535"));
            }
        }
        Ok(Self(list))
    }

    /// librdkafka's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.0.join(",")
    }

    pub fn entries(&self) -> &[String] {
        &self.0
    }
}

impl std::str::FromStr for Brokers {
    type Err = String;

    /// `host:port[,host:port...]`, as `bootstrap.servers` is written.
    fn from_str(s: &str) -> Result<Self, String> {
        Brokers::new(&s.split(',').collect::<Vec<_>>())
    }
}

impl Serialize for Brokers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.bootstrap())
    }
}

impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            List(Vec<String>),
        }
        match Form::deserialize(d)? {
            Form::Text(text) => text.parse(),
            Form::List(list) => Brokers::new(&list),
        }
        .map_err(de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_take_a_list_or_comma_separated_text() {
        let text: Brokers = serde_json::from_str(r#""k1:9092, k2:9093""#).expect("text");
        let list: Brokers = serde_json::from_str(r#"["k1:9092", "k2:9093"]"#).expect("list");
        assert_eq!(text, list);
        assert_eq!(text.bootstrap(), "k1:9092,k2:9093");
        for bad in [r#""""#, r#""k1""#, r#""k1:0""#, r#""k1:99999""#, r#"[":9092"]"#, "[]"] {
            assert!(serde_json::from_str::<Brokers>(bad).is_err(), "{bad}");
        }
    }
}
