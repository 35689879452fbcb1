//! Canonical JSON for request fingerprints: object keys sorted, no whitespace.

use serde_json::{Map, Value};

/// Serializes `value` with every object's keys sorted, so that two documents
/// that differ only in key order or whitespace produce the same text.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect::<Map<String, Value>>(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b": {"y": 1, "x": [ {"q":1,"p":2} ]}, "a": "z"}"#)
            .expect("json");
        let b: Value =
            serde_json::from_str(r#"{"a":"z","b":{"x":[{"p":2,"q":1}],"y":1}}"#).expect("json");
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&b),
            r#"{"a":"z","b":{"x":[{"p":2,"q":1}],"y":1}}"#
        );
    }
}
