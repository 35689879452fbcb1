//! RFC 8785 (JSON Canonicalization Scheme): objects, arrays, strings,
//! booleans, null and numbers. talea writes amounts as decimal strings, but
//! metadata is the client's JSON and may hold any number: numbers are
//! written as JCS says (§3.2.2.3), as the IEEE 754 double they denote in
//! ECMAScript's shortest form (`ryu-js`), so `2.50`, `2.5` and `25e-1` are
//! one number, and an integer beyond ±2^53 is bound as the double nearest
//! to it (keep exact large numbers in metadata as strings).

use serde_json::Value;

/// The deepest nesting accepted: deeper input is refused, never recursed into
/// until the stack runs out. Above what `serde_json` parses (128) and the few
/// levels an event wraps its data in.
pub const JCS_DEPTH_MAX: usize = 256;

/// Why a value has no canonical form here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// A number that is not a finite double (JSON text cannot hold one;
    /// only a value built in memory can).
    #[error("the number {0} is not a finite double")]
    NotFinite(String),
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

/// Appends the canonical bytes of `value` to `out` (as [`canonical`]).
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    write(value, 0, out)
}

/// Appends the canonical form of the string `s` (quoted, escaped) to `out`.
pub fn write_canonical_string(s: &str, out: &mut Vec<u8>) {
    write_string(s, out);
}

fn write(value: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if depth > JCS_DEPTH_MAX {
        return Err(JcsError::TooDeep);
    }
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(n, out)?,
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

/// A number as ECMAScript's `Number.prototype.toString` writes its double
/// (RFC 8785 §3.2.2.3): `-0` as `0`, integers below 10^21 in plain digits,
/// the rest in the shortest form that reads back to the same double.
fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), JcsError> {
    let value = n
        .as_f64()
        .filter(|v| v.is_finite())
        .ok_or_else(|| JcsError::NotFinite(n.to_string()))?;
    if value == 0.0 {
        out.push(b'0');
        return Ok(());
    }
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format_finite(value).as_bytes());
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Most strings (names, amounts, times) need no escape: copied whole.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
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

    /// RFC 8785 Appendix B's numbers (those JSON text can hold), and the
    /// integers around 2^53.
    #[test]
    fn numbers_are_written_as_ecmascript_writes_doubles() {
        for (input, expected) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("1", "1"),
            ("2.50", "2.5"),
            ("25e-1", "2.5"),
            ("1e3", "1000"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("9007199254740991", "9007199254740991"),
            ("9007199254740992", "9007199254740992"),
            ("9007199254740993", "9007199254740992"),
            ("295147905179352830000", "295147905179352830000"),
            ("1e21", "1e+21"),
            ("333333333.33333329", "333333333.3333333"),
            ("1E30", "1e+30"),
            ("4.50", "4.5"),
            ("2e-3", "0.002"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("-9223372036854775808", "-9223372036854776000"),
        ] {
            let value: Value = serde_json::from_str(input).expect("json");
            assert_eq!(text(&value), expected, "{input}");
        }
    }

    #[test]
    fn refuses_deep_nesting() {
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
