//! RFC 8785 (JSON Canonicalization Scheme) for the JSON talea's events hold:
//! objects, arrays, strings, booleans, null and integers. Amounts in talea are
//! decimal strings, so events carry no fractional numbers; a float is
//! refused rather than given ECMAScript's number formatting, and so is an
//! integer beyond ±(2^53 − 1), which JCS could not carry exactly.

use serde_json::Value;

/// The deepest nesting accepted: deeper input is refused, never recursed into
/// until the stack runs out.
pub const JCS_DEPTH_MAX: usize = 128;

/// The largest integer magnitude JCS represents exactly (2^53 − 1).
pub const JCS_INTEGER_MAX: u64 = (1 << 53) - 1;

/// Why a value has no canonical form here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// A number with a fraction or exponent: talea's events carry none.
    #[error("a fractional number ({0}) has no canonical form here; amounts are strings")]
    Float(String),
    /// An integer outside ±(2^53 − 1).
    #[error("the integer {0} is outside ±(2^53 - 1)")]
    IntegerRange(String),
    /// Nesting deeper than [`JCS_DEPTH_MAX`].
    #[error("JSON nested deeper than {JCS_DEPTH_MAX} levels")]
    TooDeep,
}

/// The canonical UTF-8 bytes of `value`: no whitespace, object members
/// sorted by the UTF-16 code units of their names, strings escaped as JCS
/// (and `serde_json`) escape them: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`,
/// other control characters as `\u00xx`, everything else literal.
pub fn canonical(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::new();
    write(value, 0, &mut out)?;
    Ok(out)
}

fn write(value: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if depth > JCS_DEPTH_MAX {
        return Err(JcsError::TooDeep);
    }
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_integer(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, depth + 1, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(Vec<u16>, &String, &Value)> = map
                .iter()
                .map(|(k, v)| (k.encode_utf16().collect(), k, v))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'{');
            for (i, (_, key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(member, depth + 1, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_integer(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), JcsError> {
    let magnitude = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u,
        (None, Some(i)) => i.unsigned_abs(),
        (None, None) => return Err(JcsError::Float(n.to_string())),
    };
    if magnitude > JCS_INTEGER_MAX {
        return Err(JcsError::IntegerRange(n.to_string()));
    }
    out.extend_from_slice(n.to_string().as_bytes());
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is exactly JCS's (RFC 8785 §3.2.2.2).
    let mut escaped = String::with_capacity(s.len() + 2);
    escaped.push('"');
    for c in s.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\u{8}' => escaped.push_str("\\b"),
            '\u{c}' => escaped.push_str("\\f"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    escaped.push('"');
    out.extend_from_slice(escaped.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(value: &Value) -> String {
        String::from_utf8(canonical(value).expect("canonical")).expect("utf-8")
    }

    #[test]
    fn sorts_by_utf16_code_units_and_escapes_like_jcs() {
        // RFC 8785 §3.2.3's sorting example (keys only; its numbers are floats).
        let v = json!({
            "\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{80}": "Control", "\u{f6}": "Latin Small Letter O With Diaeresis"
        });
        let keys: Vec<String> = serde_json::from_slice::<serde_json::Map<String, Value>>(
            &canonical(&v).expect("canonical"),
        )
        .expect("json")
        .keys()
        .cloned()
        .collect();
        assert_eq!(
            keys,
            [
                "\r",
                "1",
                "\u{80}",
                "\u{f6}",
                "\u{20ac}",
                "\u{1f600}",
                "\u{fb33}"
            ]
        );
        assert_eq!(
            text(&json!({"b": [1, -2, true, null], "a": "\u{1}\"\\/\u{7f}\u{2028}é\n"})),
            "{\"a\":\"\\u0001\\\"\\\\/\u{7f}\u{2028}é\\n\",\"b\":[1,-2,true,null]}"
        );
    }

    #[test]
    fn refuses_floats_big_integers_and_deep_nesting() {
        assert!(matches!(canonical(&json!(1.5)), Err(JcsError::Float(_))));
        assert!(matches!(canonical(&json!(1e3)), Err(JcsError::Float(_))));
        assert_eq!(text(&json!(9007199254740991u64)), "9007199254740991");
        assert!(matches!(
            canonical(&json!(9007199254740992u64)),
            Err(JcsError::IntegerRange(_))
        ));
        assert!(matches!(
            canonical(&json!(i64::MIN)),
            Err(JcsError::IntegerRange(_))
        ));
        let mut deep = json!(0);
        for _ in 0..=JCS_DEPTH_MAX {
            deep = json!([deep]);
        }
        assert_eq!(canonical(&deep), Err(JcsError::TooDeep));
    }

    proptest! {
        #[test]
        fn strings_agree_with_serde_json(s in any::<String>()) {
            prop_assert_eq!(text(&json!(s)), serde_json::to_string(&s).expect("json"));
        }

        #[test]
        fn canonical_text_parses_back_to_the_same_value(
            entries in proptest::collection::btree_map(any::<String>(), any::<i32>(), 0..8)
        ) {
            let v = json!(entries);
            let back: Value = serde_json::from_slice(&canonical(&v).expect("canonical")).expect("json");
            prop_assert_eq!(back, v);
        }
    }
}
