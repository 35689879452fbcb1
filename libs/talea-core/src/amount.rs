//! Exact decimal amounts held as signed 128-bit integers of minor units.

use std::cmp::Ordering;
use std::fmt;

/// The largest number of fractional digits an asset may have.
pub const SCALE_MAX: u8 = 30;

/// An asset's number of fractional digits, 0 to [`SCALE_MAX`]; it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scale(u8);

impl Scale {
    /// No fractional digits.
    pub const ZERO: Self = Self(0);

    /// Accepts 0..=30.
    pub fn new(digits: i64) -> Option<Self> {
        u8::try_from(digits)
            .ok()
            .filter(|d| *d <= SCALE_MAX)
            .map(Self)
    }

    /// The number of fractional digits.
    pub const fn digits(self) -> u8 {
        self.0
    }
}

/// Why a decimal text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Not of the form `-?[0-9]+(\.[0-9]+)?`.
    #[error("must be a decimal string such as \"12.5\" or \"-3\"")]
    Syntax,
    /// More fractional digits than the asset's scale allows; amounts are never rounded.
    #[error("has more fractional digits than the asset's scale of {scale}")]
    TooManyDecimals {
        /// The asset's scale.
        scale: u8,
    },
    /// The value does not fit a signed 128-bit integer of minor units.
    #[error("does not fit a signed 128-bit integer of minor units")]
    OutOfRange,
}

/// The parts of `-?[0-9]+(\.[0-9]+)?`: sign, integer digits, fractional digits.
fn split(text: &str) -> Result<(bool, &[u8], &[u8]), AmountError> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = match body.split_once('.') {
        Some((int, frac)) => {
            if frac.is_empty() {
                return Err(AmountError::Syntax);
            }
            (int.as_bytes(), frac.as_bytes())
        }
        None => (body.as_bytes(), &b""[..]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err(AmountError::Syntax);
    }
    Ok((negative, int, frac))
}

/// `digits` followed by `zeros` zeros, as an integer, or `OutOfRange`.
fn to_int(
    digits: impl Iterator<Item = u8>,
    zeros: u32,
    negative: bool,
) -> Result<i128, AmountError> {
    let mut value: i128 = 0;
    // Accumulate with the final sign so that i128::MIN itself is reachable.
    let sign: i128 = if negative { -1 } else { 1 };
    for digit in digits
        .map(|d| i128::from(d - b'0'))
        .chain((0..zeros).map(|_| 0))
    {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(sign * digit))
            .ok_or(AmountError::OutOfRange)?;
    }
    Ok(value)
}

/// A quantity of an asset in minor units (`10^-scale` of the unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i128);

impl Amount {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// Wraps a count of minor units.
    pub const fn from_minor(minor: i128) -> Self {
        Self(minor)
    }

    /// The count of minor units.
    pub const fn minor(self) -> i128 {
        self.0
    }

    /// Parses an exact decimal text at `scale`; extra fractional digits are an error, never rounded.
    pub fn parse(text: &str, scale: Scale) -> Result<Self, AmountError> {
        let (negative, int, frac) = split(text)?;
        if frac.len() > usize::from(scale.0) {
            return Err(AmountError::TooManyDecimals { scale: scale.0 });
        }
        // `frac.len() <= 30` here, so the subtraction and the cast are exact.
        let pad = u32::from(scale.0) - frac.len() as u32;
        let digits = int.iter().chain(frac).copied();
        to_int(digits, pad, negative).map(Self)
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// `-self`, or `None` for the one value without a negation.
    pub fn checked_neg(self) -> Option<Self> {
        self.0.checked_neg().map(Self)
    }

    /// Whether the amount is above zero.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// The exact decimal text at `scale`, with no trailing fractional zeros: `"0.015"`, `"-3"`.
    pub fn format(self, scale: Scale) -> String {
        format_minor(self.0, scale.0)
    }
}

/// Formats `minor * 10^-scale` exactly, trimming trailing fractional zeros.
fn format_minor(minor: i128, scale: u8) -> String {
    let digits = minor.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    let frac = frac.trim_end_matches('0');
    let sign = if minor < 0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// An exact decimal independent of any asset's scale, such as an account's `min_balance`,
/// which applies to every asset the account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    mantissa: i128,
    scale: u8,
}

impl Decimal {
    /// Zero.
    pub const ZERO: Self = Self {
        mantissa: 0,
        scale: 0,
    };

    /// Parses `-?[0-9]+(\.[0-9]{1,30})?`, normalised so equal values compare equal.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let (negative, int, frac) = split(text)?;
        let frac = {
            // Trailing fractional zeros carry no value; dropping them normalises.
            let keep = frac.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
            &frac[..keep]
        };
        if frac.len() > usize::from(SCALE_MAX) {
            return Err(AmountError::TooManyDecimals { scale: SCALE_MAX });
        }
        let mantissa = to_int(int.iter().chain(frac).copied(), 0, negative)?;
        // `frac.len() <= 30` was checked above.
        Ok(Self {
            mantissa,
            scale: frac.len() as u8,
        })
    }

    /// Rebuilds a decimal from its parts, as a store hands them back.
    pub fn from_parts(mantissa: i128, scale: u8) -> Option<Self> {
        (scale <= SCALE_MAX).then_some(Self { mantissa, scale })
    }

    /// The integer mantissa (value is `mantissa * 10^-scale`).
    pub const fn mantissa(self) -> i128 {
        self.mantissa
    }

    /// The number of fractional digits of the mantissa.
    pub const fn scale(self) -> u8 {
        self.scale
    }

    /// Compares an amount of an asset at `scale` with this decimal, exactly.
    pub fn cmp_amount(self, amount: Amount, scale: Scale) -> Ordering {
        let (a, s) = (amount.minor(), scale.digits());
        match s.cmp(&self.scale) {
            Ordering::Equal => a.cmp(&self.mantissa),
            Ordering::Greater => {
                match pow10(s - self.scale).and_then(|p| self.mantissa.checked_mul(p)) {
                    Some(m) => a.cmp(&m),
                    // |mantissa * 10^k| exceeds every i128, so its sign decides.
                    None => 0.cmp(&self.mantissa),
                }
            }
            Ordering::Less => match pow10(self.scale - s).and_then(|p| a.checked_mul(p)) {
                Some(x) => x.cmp(&self.mantissa),
                None => a.cmp(&0),
            },
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_minor(self.mantissa, self.scale))
    }
}

/// `10^exp` when it fits an i128.
fn pow10(exp: u8) -> Option<i128> {
    10i128.checked_pow(u32::from(exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(d: i64) -> Scale {
        Scale::new(d).expect("valid scale")
    }

    #[test]
    fn parses_and_formats() {
        assert_eq!(Amount::parse("0.015", s(8)), Ok(Amount(1_500_000)));
        assert_eq!(Amount::parse("-3", s(0)), Ok(Amount(-3)));
        assert_eq!(Amount::parse("007", s(2)), Ok(Amount(700)));
        assert_eq!(Amount(1_500_000).format(s(8)), "0.015");
        assert_eq!(Amount(-300).format(s(2)), "-3");
        assert_eq!(Amount(0).format(s(8)), "0");
        assert_eq!(Amount(-1).format(s(3)), "-0.001");
        assert_eq!(Amount(i128::MIN).format(s(0)), i128::MIN.to_string());
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "", "-", "+1", "1.", ".5", "1e5", " 1", "1 ", "--1", "0x1", "1.2.3", "١",
        ] {
            assert_eq!(
                Amount::parse(bad, s(2)),
                Err(AmountError::Syntax),
                "{bad:?}"
            );
        }
        assert_eq!(
            Amount::parse("0.001", s(2)),
            Err(AmountError::TooManyDecimals { scale: 2 })
        );
        assert_eq!(
            Amount::parse("1", s(30)).map(Amount::minor),
            Ok(10i128.pow(30))
        );
        assert_eq!(
            Amount::parse("1000000000", s(30)),
            Err(AmountError::OutOfRange)
        );
        assert_eq!(
            Amount::parse(&i128::MAX.to_string(), s(0)),
            Ok(Amount(i128::MAX))
        );
        assert_eq!(
            Amount::parse(&i128::MIN.to_string(), s(0)),
            Ok(Amount(i128::MIN))
        );
        assert_eq!(
            Amount::parse("170141183460469231731687303715884105728", s(0)),
            Err(AmountError::OutOfRange)
        );
        assert_eq!(
            Amount::parse(&"9".repeat(5000), s(0)),
            Err(AmountError::OutOfRange)
        );
    }

    #[test]
    fn decimals_compare_exactly_across_scales() {
        let zero = Decimal::parse("0").expect("zero");
        assert_eq!(zero.cmp_amount(Amount(-1), s(8)), Ordering::Less);
        assert_eq!(zero.cmp_amount(Amount(0), s(8)), Ordering::Equal);
        let d = Decimal::parse("-10.50").expect("decimal");
        assert_eq!(d.to_string(), "-10.5");
        assert_eq!(d.cmp_amount(Amount(-1050), s(2)), Ordering::Equal);
        assert_eq!(d.cmp_amount(Amount(-11), s(0)), Ordering::Less);
        assert_eq!(d.cmp_amount(Amount(-10), s(0)), Ordering::Greater);
        let tiny = Decimal::parse("0.000000000000000000000000000001").expect("tiny");
        assert_eq!(tiny.cmp_amount(Amount(i128::MAX), s(0)), Ordering::Greater);
        assert_eq!(tiny.cmp_amount(Amount(0), s(0)), Ordering::Less);
        let huge = Decimal::parse(&i128::MAX.to_string()).expect("huge");
        assert_eq!(huge.cmp_amount(Amount(i128::MAX), s(30)), Ordering::Less);
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(minor in any::<i128>(), scale in 0u8..=30) {
            let scale = Scale(scale);
            let text = Amount(minor).format(scale);
            prop_assert_eq!(Amount::parse(&text, scale), Ok(Amount(minor)));
        }

        #[test]
        fn decimal_order_matches_amount_order(a in any::<i64>(), b in any::<i64>(), scale in 0u8..=12) {
            let scale = Scale(scale);
            let d = Decimal::parse(&Amount(i128::from(b)).format(scale)).expect("decimal");
            prop_assert_eq!(d.cmp_amount(Amount(i128::from(a)), scale), i128::from(a).cmp(&i128::from(b)));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,60}", scale in 0u8..=30) {
            let _ = Amount::parse(&text, Scale(scale));
            let _ = Decimal::parse(&text);
        }
    }
}
