//! Token scopes: the tokens file, principals, and the 401/403 decisions made from them.
//!
//! The embedded build and `talea-scope` both evaluate tokens with [`TokenSet`];
//! the HTTP layer asks an [`Authenticator`] (the local [`TokenSet`], or the
//! scope service's [`ScopeClient`], which caches answers behind a circuit
//! breaker) and decides scope with [`Principal`].

mod breaker;
mod cache;
mod hide;
pub mod introspect;
mod scope_client;
mod ticket;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

mod source;
pub use hide::{HIDE_SETS, HIDEABLE_FIELDS, Hide};
pub use scope_client::{
    BREAKER_FAILURES_TO_OPEN, BREAKER_OPEN_MS, CACHE_ENTRIES_MAX, INTROSPECT_TIMEOUT_MS,
    NEGATIVE_TTL_S, POSITIVE_TTL_MAX_S, ScopeClient, ScopeClientConfig, ScopeClientError,
};
pub use source::{SourceError, TokenSource};
pub use ticket::{
    TICKET_CHARS_MAX, TICKET_CLOCK_SKEW_S_MAX, TICKET_KEY_BYTES_MIN, TICKET_TTL_S_DEFAULT,
    TICKET_TTL_S_MAX, Ticket, TicketConfigError, TicketError, TicketGrant, TicketKey, Tickets,
};

/// A secret string that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it must leave the process.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` equals this secret, compared in constant time (on
    /// SHA-256 digests, so the lengths leak nothing either).
    pub fn verify(&self, presented: &str) -> bool {
        digest(&self.0).ct_eq(&digest(presented)).into()
    }
}

// The wire form is the bare string: the introspection request carries the
// token it asks about. `Debug` stays redacted.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Reads only.
    Ro,
    /// Reads and writes.
    Rw,
}

/// The books a token covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Books {
    /// `["*"]`: every book.
    All,
    /// Exactly these names.
    Only(BTreeSet<String>),
}

impl Books {
    /// Parses a list as the tokens file writes it: `["*"]` alone, or a
    /// non-empty list of exact names. The error names no token.
    pub fn from_list(list: Vec<String>) -> Result<Self, String> {
        if list.iter().any(|b| b == "*") {
            if list.len() != 1 {
                return Err("\"*\" must stand alone".to_owned());
            }
            Ok(Self::All)
        } else if list.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(Self::Only(list.into_iter().collect()))
        }
    }

    /// The list form: `["*"]`, or the names in order.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Only(names) => names.iter().cloned().collect(),
        }
    }
}

/// Who a request is on behalf of, and what it may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name in the tokens file; `None` for `TALEA_API_TOKEN`.
    pub name: Option<String>,
    /// Books in scope.
    pub books: Books,
    /// Read-only or read-write.
    pub access: Access,
    /// Fields removed from everything sent for this token.
    pub hide: Hide,
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("forbidden on book {book:?}")]
pub struct Forbidden {
    /// The book refused (`*` for global routes).
    pub book: String,
}

impl Principal {
    /// The all-books read-write principal of `TALEA_API_TOKEN`.
    pub fn root() -> Self {
        Self {
            name: None,
            books: Books::All,
            access: Access::Rw,
            hide: Hide::NONE,
        }
    }

    /// Whether `book` is in scope.
    pub fn covers(&self, book: &str) -> bool {
        match &self.books {
            Books::All => true,
            Books::Only(names) => names.contains(book),
        }
    }

    /// May read `book`.
    pub fn check_read(&self, book: &str) -> Result<(), Forbidden> {
        if self.covers(book) {
            Ok(())
        } else {
            Err(Forbidden {
                book: book.to_owned(),
            })
        }
    }

    /// May write `book`.
    pub fn check_write(&self, book: &str) -> Result<(), Forbidden> {
        if self.covers(book) && self.access == Access::Rw {
            Ok(())
        } else {
            Err(Forbidden {
                book: book.to_owned(),
            })
        }
    }

    /// May change global state (the asset registry): `rw` and `["*"]`.
    pub fn check_global_write(&self) -> Result<(), Forbidden> {
        if self.books == Books::All && self.access == Access::Rw {
            Ok(())
        } else {
            Err(Forbidden {
                book: "*".to_owned(),
            })
        }
    }
}

/// Loading the tokens configuration failed; startup must stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("tokens file {path} is invalid: {message}")]
    Invalid {
        /// The path.
        path: String,
        /// What is wrong (never a token).
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    tokens: std::collections::BTreeMap<String, EntryShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryShape {
    token: Option<String>,
    token_sha256: Option<String>,
    books: Vec<String>,
    access: Access,
    #[serde(default)]
    hide: Vec<String>,
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// The configured tokens, held only as SHA-256 digests.
pub struct TokenSet {
    entries: Vec<Entry>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenSet {
    /// Loads `TALEA_API_TOKEN` (if set) and the tokens file (if given). A file
    /// that is unreadable, malformed or holds no token is an error.
    pub fn load(api_token: Option<&Secret>, file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut set = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Self::parse_file(&text).map_err(|message| ConfigError::Invalid {
                    path: path.display().to_string(),
                    message,
                })?
            }
            None => Self {
                entries: Vec::new(),
            },
        };
        if let Some(token) = api_token {
            set = set.with_api_token(token);
        }
        Ok(set)
    }

    /// Adds `TALEA_API_TOKEN`: an unnamed all-books read-write token (ignored when empty).
    pub fn with_api_token(mut self, token: &Secret) -> Self {
        if !token.expose().is_empty() {
            self.entries.push(Entry {
                digest: digest(token.expose()),
                principal: Principal::root(),
            });
        }
        self
    }

    /// Parses the TOML tokens file.
    pub fn parse_file(text: &str) -> Result<Self, String> {
        let shape: FileShape = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if shape.tokens.is_empty() {
            return Err("the file defines no [tokens.<name>] entry".to_owned());
        }
        let mut entries = Vec::with_capacity(shape.tokens.len());
        for (name, entry) in shape.tokens {
            let digest = match (entry.token, entry.token_sha256) {
                (Some(token), None) if !token.is_empty() => digest(&token),
                (None, Some(hex_digest)) => {
                    let bytes = hex::decode(hex_digest.trim()).ok();
                    bytes
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or_else(|| {
                            format!("tokens.{name}.token_sha256 must be 64 hex digits")
                        })?
                }
                _ => {
                    return Err(format!(
                        "tokens.{name} needs exactly one of a non-empty `token` or `token_sha256`"
                    ));
                }
            };
            let books = Books::from_list(entry.books)
                .map_err(|why| format!("tokens.{name}.books: {why}"))?;
            let hide =
                Hide::from_list(&entry.hide).map_err(|why| format!("tokens.{name}.hide: {why}"))?;
            entries.push(Entry {
                digest,
                principal: Principal {
                    name: Some(name),
                    books,
                    access: entry.access,
                    hide,
                },
            });
        }
        Ok(Self { entries })
    }

    /// Whether no token is configured at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The principal for `token`, if any. Compares against every entry in
    /// constant time (no early exit), so timing reveals nothing about which
    /// entry, if any, matched.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented = digest(token);
        let mut found: Option<&Principal> = None;
        for entry in &self.entries {
            let equal: bool = entry.digest.ct_eq(&presented).into();
            if equal && found.is_none() {
                found = Some(&entry.principal);
            }
        }
        found.cloned()
    }
}

/// Authentication could not be decided (the scope service is unreachable);
/// the caller fails closed with 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token scope service unavailable")]
pub struct Undecided;

/// Turns a bearer token into a principal.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// `Ok(None)` for an unknown token.
    async fn authenticate(&self, token: &str) -> Result<Option<Principal>, Undecided>;
}

#[async_trait]
impl Authenticator for TokenSet {
    async fn authenticate(&self, token: &str) -> Result<Option<Principal>, Undecided> {
        Ok(TokenSet::authenticate(self, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[tokens.payments]
token = "pay-secret"
books = ["payments"]
access = "rw"

[tokens.auditor]
token_sha256 = "5d41402abc4b2a76b9719d911017c592ae2f9b9c5b0b1f1b7a3e7f6a2c8b9d0e"
books = ["*"]
access = "ro"
"#;

    #[test]
    fn parses_and_authenticates() {
        let set = TokenSet::load(Some(&Secret::new("root")), None).expect("loads");
        assert_eq!(set.authenticate("root"), Some(Principal::root()));
        assert_eq!(set.authenticate("nope"), None);

        let set = TokenSet::parse_file(FILE).expect("parses");
        let p = set.authenticate("pay-secret").expect("known");
        assert_eq!(p.name.as_deref(), Some("payments"));
        assert!(p.check_write("payments").is_ok());
        assert!(p.check_read("other").is_err());
        assert!(p.check_global_write().is_err());
    }

    #[test]
    fn sha256_entries_match_their_token() {
        let hex_digest = hex::encode(digest("audit-secret"));
        let file = format!(
            "[tokens.a]\ntoken_sha256 = \"{hex_digest}\"\nbooks = [\"*\"]\naccess = \"ro\"\n"
        );
        let set = TokenSet::parse_file(&file).expect("parses");
        let p = set.authenticate("audit-secret").expect("known");
        assert!(p.check_read("any").is_ok());
        assert!(p.check_write("any").is_err());
    }

    #[test]
    fn broken_files_fail() {
        for bad in [
            "",
            "[tokens]",
            "not toml [",
            "[tokens.a]\ntoken = \"x\"\nbooks = []\naccess = \"rw\"",
            "[tokens.a]\ntoken = \"x\"\nbooks = [\"b\"]\naccess = \"admin\"",
            "[tokens.a]\ntoken = \"x\"\ntoken_sha256 = \"00\"\nbooks = [\"b\"]\naccess = \"rw\"",
            "[tokens.a]\nbooks = [\"b\"]\naccess = \"rw\"",
            "[tokens.a]\ntoken = \"x\"\nbooks = [\"b\"]\naccess = \"rw\"\nextra = 1",
        ] {
            assert!(TokenSet::parse_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hide_policies_parse_and_unknown_fields_fail_naming_the_token() {
        let file = "[tokens.browser]\ntoken = \"b\"\nbooks = [\"payments\"]\naccess = \"ro\"\n\
                    hide = [\"metadata\", \"memo\"]\n\n\
                    [tokens.plain]\ntoken = \"p\"\nbooks = [\"*\"]\naccess = \"ro\"\nhide = []\n";
        let set = TokenSet::parse_file(file).expect("parses");
        let browser = set.authenticate("b").expect("known");
        assert_eq!(browser.hide.to_list(), ["metadata", "memo"]);
        assert!(set.authenticate("p").expect("known").hide.is_empty());
        // Absent means nothing hidden.
        let p = TokenSet::parse_file(FILE)
            .expect("parses")
            .authenticate("pay-secret")
            .expect("known");
        assert_eq!(p.hide, Hide::NONE);

        let bad = "[tokens.browser]\ntoken = \"b\"\nbooks = [\"*\"]\naccess = \"ro\"\n\
                   hide = [\"metadata\", \"postings\"]\n";
        let err = TokenSet::parse_file(bad).expect_err("unknown field");
        assert!(err.contains("tokens.browser.hide"), "{err}");
        assert!(err.contains("\"postings\""), "{err}");
        let not_a_list =
            "[tokens.b]\ntoken = \"b\"\nbooks = [\"*\"]\naccess = \"ro\"\nhide = \"memo\"\n";
        assert!(TokenSet::parse_file(not_a_list).is_err());
    }

    #[test]
    fn secrets_verify_in_constant_time_and_serialize_bare() {
        let s = Secret::new("service-token");
        assert!(s.verify("service-token"));
        assert!(!s.verify("service-token "));
        assert!(!s.verify(""));
        assert_eq!(
            serde_json::to_string(&s).expect("serializes"),
            "\"service-token\""
        );
    }

    #[test]
    fn books_lists_round_trip() {
        assert_eq!(Books::from_list(vec!["*".into()]), Ok(Books::All));
        assert!(Books::from_list(vec!["*".into(), "a".into()]).is_err());
        assert!(Books::from_list(vec![]).is_err());
        let only = Books::from_list(vec!["b".into(), "a".into()]).expect("parses");
        assert_eq!(only.to_list(), vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(Books::All.to_list(), vec!["*".to_owned()]);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let set = TokenSet::parse_file(FILE).expect("parses");
        assert!(!format!("{set:?}").contains("pay-secret"));
    }
}
