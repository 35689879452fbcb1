//! Amount and decimal parsing: `Amount::parse(text, scale)` and `Decimal::parse(text)`.
//!
//! Input: the first byte picks the scale (modulo 31), the rest is the text.
//! Besides never panicking, whatever parses must format back to text that
//! parses to the same value, and an amount and a decimal parsed from the
//! same text must compare equal.

#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use talea_core::{Amount, Decimal, SCALE_MAX, Scale};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Some(scale) = Scale::new(i64::from(first % (SCALE_MAX + 1))) else {
        return;
    };
    let amount = Amount::parse(text, scale);
    if let Ok(a) = amount {
        let formatted = a.format(scale);
        assert_eq!(
            Amount::parse(&formatted, scale),
            Ok(a),
            "{text:?} -> {formatted:?}"
        );
    }
    let decimal = Decimal::parse(text);
    if let Ok(d) = decimal {
        let formatted = d.to_string();
        assert_eq!(
            Decimal::parse(&formatted),
            Ok(d),
            "{text:?} -> {formatted:?}"
        );
    }
    if let (Ok(a), Ok(d)) = (amount, decimal) {
        assert_eq!(
            d.cmp_amount(a, scale),
            Ordering::Equal,
            "{text:?} at {scale:?}"
        );
    }
});
