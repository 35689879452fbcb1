//! Stream tickets: short-lived, HMAC-signed stand-ins for a bearer token on
//! one book's stream, for browsers (native `EventSource` cannot send an
//! `Authorization` header).
//!
//! A ticket is `<claims>.<tag>`, both base64url without padding: the claims
//! are a small JSON object (the token's name, access and hidden fields, the
//! one book, the expiry in microseconds since the epoch), the tag is
//! HMAC-SHA256 over the encoded claims under `TALEA_STREAM_TICKET_KEY`. Any
//! replica holding the key verifies a ticket on its own: nothing is stored,
//! nothing is shared but the key. The principal a ticket stands for is the
//! token's, narrowed to the ticket's book.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{Access, Books, Hide, Principal, Secret};

/// The longest life a ticket may be given, in seconds (`TALEA_STREAM_TICKET_TTL_S`).
pub const TICKET_TTL_S_MAX: u64 = 60;

/// The default life of a ticket, in seconds.
pub const TICKET_TTL_S_DEFAULT: u64 = 60;

// The default must itself be a valid lifetime.
const _: () = assert!(TICKET_TTL_S_DEFAULT > 0 && TICKET_TTL_S_DEFAULT <= TICKET_TTL_S_MAX);

/// The shortest `TALEA_STREAM_TICKET_KEY` accepted, in bytes: HMAC-SHA256's
/// output size, so the key is never the weaker part.
pub const TICKET_KEY_BYTES_MIN: usize = 32;

/// The longest ticket accepted (and issued), in characters. Bounds the work
/// done on an untrusted query parameter before its tag is checked.
pub const TICKET_CHARS_MAX: usize = 1024;

/// How far a ticket's expiry may lie beyond `now + TICKET_TTL_S_MAX` and
/// still be accepted, in seconds: clock skew between replicas.
pub const TICKET_CLOCK_SKEW_S_MAX: u64 = 5;

/// Domain separation: a tag made for anything else never verifies as a ticket.
const TAG_CONTEXT: &[u8] = b"talea-stream-ticket-v1.";

type HmacSha256 = Hmac<Sha256>;

/// The key tickets are signed with. Never printed.
#[derive(Clone)]
pub struct TicketKey(Vec<u8>);

impl TicketKey {
    /// The configured key: at least [`TICKET_KEY_BYTES_MIN`] bytes.
    pub fn from_secret(secret: &Secret) -> Result<Self, TicketConfigError> {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < TICKET_KEY_BYTES_MIN {
            return Err(TicketConfigError::KeyTooShort { bytes: bytes.len() });
        }
        Ok(Self(bytes.to_vec()))
    }

    /// A random key for this process alone: tickets it signs verify nowhere else.
    pub fn random() -> Self {
        let mut bytes = vec![0u8; TICKET_KEY_BYTES_MIN];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail; the fallback
        // keeps the code free of panics all the same.
        let mut mac = HmacSha256::new_from_slice(&self.0)
            .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        mac.update(TAG_CONTEXT);
        mac
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(***)")
    }
}

/// A ticket configuration that must stop startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketConfigError {
    /// `TALEA_STREAM_TICKET_KEY` is shorter than [`TICKET_KEY_BYTES_MIN`].
    #[error(
        "TALEA_STREAM_TICKET_KEY must be at least {TICKET_KEY_BYTES_MIN} bytes (it has {bytes}); \
         generate one with `openssl rand -base64 48`"
    )]
    KeyTooShort {
        /// The length given.
        bytes: usize,
    },
    /// `TALEA_STREAM_TICKET_TTL_S` is 0 or above [`TICKET_TTL_S_MAX`].
    #[error("TALEA_STREAM_TICKET_TTL_S must be 1..={TICKET_TTL_S_MAX} seconds (it is {ttl_s})")]
    BadTtl {
        /// The value given.
        ttl_s: u64,
    },
}

/// Why a ticket was not issued or not accepted. Every verification failure
/// is answered 401 alike; the variants exist for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a ticket: too long, not two base64url parts, or bad claims.
    #[error("malformed stream ticket")]
    Malformed,
    /// The tag does not match: tampered, or signed under another key.
    #[error("stream ticket signature mismatch")]
    BadSignature,
    /// A valid ticket for another book.
    #[error("stream ticket for another book")]
    WrongBook,
    /// Past its expiry (or, beyond clock skew, too far in the future).
    #[error("stream ticket expired")]
    Expired,
    /// The principal does not cover the book (issuing only).
    #[error("the token cannot read this book")]
    OutOfScope,
    /// The claims would not fit in [`TICKET_CHARS_MAX`] (issuing only: a
    /// very long token name).
    #[error("the token's name is too long for a stream ticket")]
    TooLong,
}

/// A ticket just issued.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The ticket, as it goes in `?ticket=`.
    pub ticket: Secret,
    /// When it stops being accepted, in microseconds since the epoch.
    pub expires_at_micros: i64,
}

/// What a valid ticket grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketGrant {
    /// The token's principal, narrowed to the ticket's book.
    pub principal: Principal,
    /// When the ticket expires, in microseconds since the epoch.
    pub expires_at_micros: i64,
}

/// The claims signed into a ticket; short keys keep URLs short.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    /// The token's name (`None`: `TALEA_API_TOKEN`).
    #[serde(rename = "n")]
    name: Option<String>,
    /// The one book.
    #[serde(rename = "b")]
    book: String,
    /// The token's access.
    #[serde(rename = "a")]
    access: Access,
    /// The token's hidden fields.
    #[serde(rename = "h", default, skip_serializing_if = "Vec::is_empty")]
    hide: Vec<String>,
    /// Expiry, microseconds since the epoch.
    #[serde(rename = "e")]
    expires_at_micros: i64,
}

/// Issues and verifies tickets with one key and one lifetime.
#[derive(Debug, Clone)]
pub struct Tickets {
    key: TicketKey,
    ttl_s: u64,
}

impl Tickets {
    /// Tickets signed with `key`, living `ttl_s` seconds (1..=[`TICKET_TTL_S_MAX`]).
    pub fn new(key: TicketKey, ttl_s: u64) -> Result<Self, TicketConfigError> {
        if ttl_s == 0 || ttl_s > TICKET_TTL_S_MAX {
            return Err(TicketConfigError::BadTtl { ttl_s });
        }
        Ok(Self { key, ttl_s })
    }

    /// Tickets under a random per-process key, living [`TICKET_TTL_S_DEFAULT`].
    pub fn process_local() -> Self {
        Self {
            key: TicketKey::random(),
            ttl_s: TICKET_TTL_S_DEFAULT,
        }
    }

    /// From the variables: the configured key, or (unset) a random
    /// per-process one. The second value says whether the key is random, so
    /// the caller can warn that other replicas will refuse these tickets.
    pub fn configure(key: Option<&Secret>, ttl_s: u64) -> Result<(Self, bool), TicketConfigError> {
        match key {
            Some(secret) => Ok((Self::new(TicketKey::from_secret(secret)?, ttl_s)?, false)),
            None => Ok((Self::new(TicketKey::random(), ttl_s)?, true)),
        }
    }

    /// The lifetime of issued tickets, in seconds.
    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// A ticket for `principal` on `book`, expiring `ttl_s` after `now_micros`.
    pub fn issue(
        &self,
        principal: &Principal,
        book: &str,
        now_micros: i64,
    ) -> Result<Ticket, TicketError> {
        if !principal.covers(book) {
            return Err(TicketError::OutOfScope);
        }
        let ttl_micros = i64::try_from(self.ttl_s)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .ok_or(TicketError::TooLong)?;
        let expires_at_micros = now_micros.saturating_add(ttl_micros);
        let claims = Claims {
            name: principal.name.clone(),
            book: book.to_owned(),
            access: principal.access,
            hide: principal.hide.to_list(),
            expires_at_micros,
        };
        let json = serde_json::to_vec(&claims).map_err(|_| TicketError::Malformed)?;
        let body = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.key.mac();
        mac.update(body.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let ticket = format!("{body}.{tag}");
        if ticket.len() > TICKET_CHARS_MAX {
            return Err(TicketError::TooLong);
        }
        Ok(Ticket {
            ticket: Secret::new(ticket),
            expires_at_micros,
        })
    }

    /// Checks `ticket` for `book` at `now_micros`: the tag first (in
    /// constant time), then the claims, the book and the expiry.
    pub fn verify(
        &self,
        ticket: &str,
        book: &str,
        now_micros: i64,
    ) -> Result<TicketGrant, TicketError> {
        if ticket.len() > TICKET_CHARS_MAX {
            return Err(TicketError::Malformed);
        }
        let (body, tag) = ticket.split_once('.').ok_or(TicketError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TicketError::Malformed)?;
        let mut mac = self.key.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TicketError::BadSignature)?;
        // Only signed bytes are parsed from here on.
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TicketError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TicketError::Malformed)?;
        if claims.book != book {
            return Err(TicketError::WrongBook);
        }
        let latest = i64::try_from(TICKET_TTL_S_MAX + TICKET_CLOCK_SKEW_S_MAX)
            .map_or(i64::MAX, |s| now_micros.saturating_add(s * 1_000_000));
        if claims.expires_at_micros <= now_micros || claims.expires_at_micros > latest {
            return Err(TicketError::Expired);
        }
        let hide = Hide::from_list(&claims.hide).map_err(|_| TicketError::Malformed)?;
        Ok(TicketGrant {
            principal: Principal {
                name: claims.name,
                books: Books::Only(BTreeSet::from([claims.book])),
                access: claims.access,
                hide,
            },
            expires_at_micros: claims.expires_at_micros,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;
    const SEC: i64 = 1_000_000;

    fn tickets(key: &str) -> Tickets {
        Tickets::new(
            TicketKey::from_secret(&Secret::new(key)).expect("key"),
            TICKET_TTL_S_DEFAULT,
        )
        .expect("tickets")
    }

    fn key_a() -> Tickets {
        tickets("a-key-of-at-least-thirty-two-bytes-long")
    }

    fn browser() -> Principal {
        Principal {
            name: Some("browser".to_owned()),
            books: Books::Only(["payments".to_owned(), "ops".to_owned()].into()),
            access: Access::Ro,
            hide: Hide::from_list(&["metadata"]).expect("hide"),
        }
    }

    #[test]
    fn a_ticket_grants_the_token_narrowed_to_its_book_until_it_expires() {
        let t = key_a();
        let issued = t.issue(&browser(), "payments", NOW).expect("issued");
        assert_eq!(issued.expires_at_micros, NOW + 60 * SEC);
        let grant = t
            .verify(issued.ticket.expose(), "payments", NOW + 59 * SEC)
            .expect("valid");
        assert_eq!(grant.expires_at_micros, NOW + 60 * SEC);
        assert_eq!(
            grant.principal,
            Principal {
                books: Books::Only(["payments".to_owned()].into()),
                ..browser()
            }
        );
        // Another replica with the same key agrees, without shared state.
        assert!(
            key_a()
                .verify(issued.ticket.expose(), "payments", NOW)
                .is_ok()
        );
        // Only URL-safe characters: it goes in a query string as is.
        assert!(
            issued
                .ticket
                .expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
    }

    #[test]
    fn the_root_token_gets_tickets_too() {
        let t = key_a();
        let issued = t.issue(&Principal::root(), "ops", NOW).expect("issued");
        let grant = t.verify(issued.ticket.expose(), "ops", NOW).expect("ok");
        assert_eq!(grant.principal.name, None);
        assert_eq!(grant.principal.access, Access::Rw);
        assert!(grant.principal.check_read("payments").is_err());
    }

    #[test]
    fn expired_wrong_book_and_foreign_key_tickets_are_refused() {
        let t = key_a();
        let ticket = t.issue(&browser(), "payments", NOW).expect("issued").ticket;
        let ticket = ticket.expose();
        assert_eq!(
            t.verify(ticket, "payments", NOW + 60 * SEC),
            Err(TicketError::Expired)
        );
        assert_eq!(t.verify(ticket, "ops", NOW), Err(TicketError::WrongBook));
        let other = tickets("another-key-of-at-least-thirty-two-bytes");
        assert_eq!(
            other.verify(ticket, "payments", NOW),
            Err(TicketError::BadSignature)
        );
        // A ticket whose expiry lies too far ahead is not trusted either
        // (a replica's clock far behind, or a key shared with a bad issuer).
        assert_eq!(
            t.verify(ticket, "payments", NOW - 10 * SEC),
            Err(TicketError::Expired)
        );
    }

    #[test]
    fn tampered_and_malformed_tickets_are_refused() {
        let t = key_a();
        let ticket = t.issue(&browser(), "payments", NOW).expect("issued").ticket;
        let ticket = ticket.expose();
        let (body, tag) = ticket.split_once('.').expect("two parts");
        // Claims rewritten (more books, longer life) under the old tag.
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"n":"browser","b":"payments","a":"rw","e":1800000050000000}"#);
        assert_eq!(
            t.verify(&format!("{forged}.{tag}"), "payments", NOW),
            Err(TicketError::BadSignature)
        );
        // One character of the tag changed.
        let mut bad_tag = tag.to_owned();
        let last = if bad_tag.ends_with('A') { "B" } else { "A" };
        bad_tag.replace_range(bad_tag.len() - 1.., last);
        assert_eq!(
            t.verify(&format!("{body}.{bad_tag}"), "payments", NOW),
            Err(TicketError::BadSignature)
        );
        for bad in [
            "",
            ".",
            "no-dot",
            "a.b.c",
            "!!!.???",
            &format!("{body}."),
            &format!("{body}.{tag}x"),
            &"a".repeat(TICKET_CHARS_MAX + 1),
        ] {
            assert!(t.verify(bad, "payments", NOW).is_err(), "{bad:?}");
        }
        // Signed claims of the wrong shape are malformed, not a panic.
        for claims in [&b"not json"[..], br#"{"b":"payments"}"#, br#"[]"#] {
            let body = URL_SAFE_NO_PAD.encode(claims);
            let mut mac = t.key.mac();
            mac.update(body.as_bytes());
            let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
            assert_eq!(
                t.verify(&format!("{body}.{tag}"), "payments", NOW),
                Err(TicketError::Malformed)
            );
        }
    }

    #[test]
    fn issuing_needs_the_book_in_scope_and_a_bounded_name() {
        let t = key_a();
        assert_eq!(
            t.issue(&browser(), "elsewhere", NOW).map(|_| ()),
            Err(TicketError::OutOfScope)
        );
        let long = Principal {
            name: Some("n".repeat(TICKET_CHARS_MAX)),
            ..browser()
        };
        assert_eq!(
            t.issue(&long, "payments", NOW).map(|_| ()),
            Err(TicketError::TooLong)
        );
    }

    #[test]
    fn configuration_limits_are_enforced() {
        assert_eq!(
            TicketKey::from_secret(&Secret::new("x".repeat(TICKET_KEY_BYTES_MIN - 1))).map(|_| ()),
            Err(TicketConfigError::KeyTooShort { bytes: 31 })
        );
        assert!(TicketKey::from_secret(&Secret::new("x".repeat(TICKET_KEY_BYTES_MIN))).is_ok());
        for ttl_s in [0, TICKET_TTL_S_MAX + 1] {
            assert_eq!(
                Tickets::new(TicketKey::random(), ttl_s).map(|_| ()),
                Err(TicketConfigError::BadTtl { ttl_s })
            );
        }
        let (t, random) = Tickets::configure(None, 10).expect("random key");
        assert!(random);
        assert_eq!(t.ttl_s(), 10);
        let (_, random) =
            Tickets::configure(Some(&Secret::new("k".repeat(40))), 60).expect("configured");
        assert!(!random);
        // Two random keys disagree: one process's tickets verify nowhere else.
        let (other, _) = Tickets::configure(None, 10).expect("random key");
        let ticket = t.issue(&browser(), "payments", NOW).expect("issued").ticket;
        assert!(other.verify(ticket.expose(), "payments", NOW).is_err());
        assert_eq!(format!("{:?}", t.key), "TicketKey(***)");
    }
}
