//! Validated names: books, accounts, asset codes and idempotency keys.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The text is empty.
    #[error("must not be empty")]
    Empty,
    /// The text is longer than the limit for its kind.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit, in characters (all allowed characters are ASCII).
        max: usize,
    },
    /// The text contains a character its kind does not allow.
    #[error("{rule}")]
    BadCharacter {
        /// The rule the text breaks, for the error message.
        rule: &'static str,
    },
}

/// Checks `text` against "first character from `first`, the rest from `rest`, at most `max`".
fn check(
    text: &str,
    max: usize,
    first: impl Fn(u8) -> bool,
    rest: impl Fn(u8) -> bool,
    rule: &'static str,
) -> Result<(), NameError> {
    let bytes = text.as_bytes();
    let Some((&head, tail)) = bytes.split_first() else {
        return Err(NameError::Empty);
    };
    if bytes.len() > max {
        return Err(NameError::TooLong { max });
    }
    if !first(head) || !tail.iter().all(|&b| rest(b)) {
        return Err(NameError::BadCharacter { rule });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A book: `^[a-z0-9][a-z0-9_-]{0,63}$`. Books are the unit of ordering and scaling.
    BookName
);
name_type!(
    /// An account within a book: `^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$`; colons make a hierarchy.
    AccountName
);
name_type!(
    /// An asset code in the global registry: `^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`.
    AssetCode
);
name_type!(
    /// A caller-chosen key, unique per book, that makes a post safe to retry:
    /// 1 to 128 printable ASCII characters (space through tilde).
    IdempotencyKey
);

impl BookName {
    /// Longest book name.
    pub const MAX: usize = 64;

    /// Parses a book name.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let lower = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        check(
            text,
            Self::MAX,
            lower,
            |b| lower(b) || b == b'_' || b == b'-',
            "must match ^[a-z0-9][a-z0-9_-]{0,63}$",
        )?;
        Ok(Self(text.to_owned()))
    }
}

impl AccountName {
    /// Longest account name.
    pub const MAX: usize = 128;

    /// Parses an account name.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check(
            text,
            Self::MAX,
            |b| b.is_ascii_alphanumeric(),
            |b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'),
            "must match ^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$",
        )?;
        Ok(Self(text.to_owned()))
    }
}

impl AssetCode {
    /// Longest asset code.
    pub const MAX: usize = 32;

    /// Parses an asset code.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check(
            text,
            Self::MAX,
            |b| b.is_ascii_alphanumeric(),
            |b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'),
            "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$",
        )?;
        Ok(Self(text.to_owned()))
    }
}

impl IdempotencyKey {
    /// Longest idempotency key.
    pub const MAX: usize = 128;

    /// Parses an idempotency key.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let printable = |b: u8| (0x20..=0x7e).contains(&b);
        check(
            text,
            Self::MAX,
            printable,
            printable,
            "must be printable ASCII",
        )?;
        Ok(Self(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_names() {
        assert!(BookName::parse("payments").is_ok());
        assert!(BookName::parse("a").is_ok());
        assert!(BookName::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            BookName::parse(&"a".repeat(65)),
            Err(NameError::TooLong { max: 64 })
        );
        assert_eq!(BookName::parse(""), Err(NameError::Empty));
        assert!(BookName::parse("Payments").is_err());
        assert!(BookName::parse("-x").is_err());
        assert!(BookName::parse("_x").is_err());
        assert!(BookName::parse("x y").is_err());
        assert!(BookName::parse("é").is_err());
    }

    #[test]
    fn account_names() {
        assert!(AccountName::parse("customers:alice:btc").is_ok());
        assert!(AccountName::parse("Hot.Wallet-1_x").is_ok());
        assert!(AccountName::parse(":x").is_err());
        assert!(AccountName::parse("a/b").is_err());
        assert!(AccountName::parse(&"a".repeat(128)).is_ok());
        assert!(AccountName::parse(&"a".repeat(129)).is_err());
    }

    #[test]
    fn asset_codes_and_keys() {
        assert!(AssetCode::parse("BTC").is_ok());
        assert!(AssetCode::parse("USDC.e").is_ok());
        assert!(AssetCode::parse("B:TC").is_err());
        assert!(AssetCode::parse(&"A".repeat(33)).is_err());
        assert!(IdempotencyKey::parse("withdrawal-7f3a").is_ok());
        assert!(IdempotencyKey::parse("with space ~").is_ok());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
    }
}
