//! An event's `properties` as the scalar leaves ClickHouse stores beside the JSON
//! (`clickhouse/007_event_properties.sql`), each keyed by its JSON Pointer (RFC 6901:
//! `/order_value`, `/item/price`, `/items/0/price`; `~` is written `~0` and `/` `~1`).
//!
//! A value property names a key at the top level of `properties` (`order_value` is the
//! pointer `/order_value`) or, starting with `/`, an explicit pointer. Its value is a JSON
//! number there; anything else (a string such as `"12.5"`, `true`, `null`, an object, a
//! missing key) is no value. The consumer extracts the leaves once per event at insert
//! time, so queries look a pointer up in an array (`indexOf`) whatever the engine's JSON
//! functions: ClickHouse 18.16's `visitParam*` match a key at any depth and read a string
//! or a missing key as 0.

use serde_json::Value;

/// Leaves kept per event; the rest are dropped (and counted by the consumer).
pub const MAX_LEAVES: usize = 256;

/// One scalar leaf: its pointer, its text (a string unescaped, a number as JSON writes it,
/// `true`/`false`) and, for a number, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub pointer: String,
    pub text: String,
    pub number: Option<f64>,
}

/// The scalar leaves of `properties` (a JSON object; anything that does not parse has
/// none) in document order of the parsed map, at most [`MAX_LEAVES`], and how many were
/// dropped beyond that. `null` is no leaf.
pub fn leaves(properties: &str) -> (Vec<Leaf>, usize) {
    let mut out = Vec::new();
    let mut dropped = 0;
    if let Ok(value) = serde_json::from_str::<Value>(properties) {
        walk(&value, &mut String::new(), &mut out, &mut dropped);
    }
    (out, dropped)
}

fn walk(value: &Value, pointer: &mut String, out: &mut Vec<Leaf>, dropped: &mut usize) {
    let mut leaf = |text: String, number: Option<f64>, out: &mut Vec<Leaf>| {
        if out.len() < MAX_LEAVES {
            out.push(Leaf { pointer: pointer.clone(), text, number });
        } else {
            *dropped += 1;
        }
    };
    match value {
        Value::Null => {}
        Value::Bool(b) => leaf(b.to_string(), None, out),
        Value::Number(n) => leaf(n.to_string(), n.as_f64().filter(|x| x.is_finite()), out),
        Value::String(s) => leaf(s.clone(), None, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(item, pointer, out, dropped);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = pointer.len();
                pointer.push('/');
                escape_into(key, pointer);
                walk(item, pointer, out, dropped);
                pointer.truncate(len);
            }
        }
    }
}

fn escape_into(key: &str, out: &mut String) {
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// The pointer a value property names: itself when it starts with `/`, else the top-level
/// key of that name. `""` (no property) names nothing.
pub fn pointer(property: &str) -> String {
    if property.is_empty() || property.starts_with('/') {
        return property.to_owned();
    }
    let mut out = String::from("/");
    escape_into(property, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(json: &str) -> Vec<(String, f64)> {
        leaves(json).0.into_iter().filter_map(|l| Some((l.pointer, l.number?))).collect()
    }

    #[test]
    fn leaves_are_keyed_by_json_pointer() {
        let (all, dropped) =
            leaves(r#"{"items":[{"order_value":3}],"order_value":10,"a/b":{"c~d":1.5},"s":"12.5","t":true,"n":null}"#);
        assert_eq!(dropped, 0);
        let texts: Vec<(&str, &str, Option<f64>)> =
            all.iter().map(|l| (l.pointer.as_str(), l.text.as_str(), l.number)).collect();
        assert_eq!(
            texts,
            [
                ("/a~1b/c~0d", "1.5", Some(1.5)),
                ("/items/0/order_value", "3", Some(3.0)),
                ("/order_value", "10", Some(10.0)),
                ("/s", "12.5", None),
                ("/t", "true", None),
            ]
        );
        assert_eq!(
            numbers(r#"{"x":-2e3,"big":18446744073709551615}"#),
            [("/big".into(), 1.8446744073709552e19), ("/x".into(), -2000.0)]
        );
        assert_eq!(leaves("not json").0, []);
        assert_eq!(leaves(r#"{"e":"a\"b\u00e9"}"#).0[0].text, "a\"bé");
    }

    #[test]
    fn leaves_beyond_the_cap_are_dropped_and_counted() {
        let many: Vec<String> = (0..MAX_LEAVES + 10).map(|i| format!("\"k{i:04}\":{i}")).collect();
        let (kept, dropped) = leaves(&format!("{{{}}}", many.join(",")));
        assert_eq!((kept.len(), dropped), (MAX_LEAVES, 10));
    }

    #[test]
    fn a_property_names_a_top_level_key_or_an_explicit_pointer() {
        assert_eq!(pointer("order_value"), "/order_value");
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
        assert_eq!(pointer("/item/price"), "/item/price");
        assert_eq!(pointer(""), "");
    }
}
