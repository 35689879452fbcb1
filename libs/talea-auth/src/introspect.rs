//! The introspection contract between `talea-scope` and its callers, in the shape of RFC 7662.
//!
//! `POST /v1/introspect` `{"token":"…"}` answers
//! `{"active":true,"name":"payments","books":["payments"],"access":"rw","ttl_seconds":60}`
//! or `{"active":false}`; a token with hidden fields adds `"hide":["metadata"]`
//! (absent when nothing is hidden). Both sides use these types, so the shape is written once.

use serde::{Deserialize, Serialize};

use crate::{Access, Books, Hide, Principal, Secret};

/// The introspection endpoint, relative to the scope service's base URL.
pub const INTROSPECT_PATH: &str = "/v1/introspect";

/// The request body: the token asked about.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// The bearer token a client presented.
    pub token: Secret,
    /// RFC 7662's optional hint; accepted and ignored (there is one kind of token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
}

/// The answer. Inactive answers carry `active: false` and nothing else, so
/// they reveal nothing about which tokens exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectResponse {
    /// Whether the token is known.
    pub active: bool,
    /// The token's name in the tokens file; absent for `TALEA_API_TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Books in scope: exact names, or `["*"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub books: Option<Vec<String>>,
    /// `ro` or `rw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// How long the caller may cache this answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Fields the caller must remove from everything it sends for this
    /// token; absent when nothing is hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide: Option<Vec<String>>,
}

/// A decoded answer: who the token is (`None`: unknown) and for how long the
/// caller may rely on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The principal, or `None` for an inactive token.
    pub principal: Option<Principal>,
    /// Seconds the answer may be cached (0 when the service gave none).
    pub ttl_seconds: u64,
}

impl IntrospectResponse {
    /// `{"active":false}`.
    pub fn inactive() -> Self {
        Self {
            active: false,
            name: None,
            books: None,
            access: None,
            ttl_seconds: None,
            hide: None,
        }
    }

    /// The active answer for `principal`, cacheable for `ttl_seconds`.
    pub fn active(principal: &Principal, ttl_seconds: u64) -> Self {
        Self {
            active: true,
            name: principal.name.clone(),
            books: Some(principal.books.to_list()),
            access: Some(principal.access),
            ttl_seconds: Some(ttl_seconds),
            hide: (!principal.hide.is_empty()).then(|| principal.hide.to_list()),
        }
    }

    /// Decodes the answer. An active answer without `books` or `access`, or
    /// with a malformed book list, or hiding a field this build does not
    /// know, is an error: the caller must not guess a scope (and must never
    /// show what it was told to hide).
    pub fn decode(self) -> Result<Answer, String> {
        if !self.active {
            return Ok(Answer {
                principal: None,
                ttl_seconds: self.ttl_seconds.unwrap_or(0),
            });
        }
        let books = self
            .books
            .ok_or_else(|| "an active answer without books".to_owned())
            .and_then(|list| Books::from_list(list).map_err(|why| format!("books: {why}")))?;
        let access = self
            .access
            .ok_or_else(|| "an active answer without access".to_owned())?;
        let hide = Hide::from_list(self.hide.as_deref().unwrap_or_default())
            .map_err(|why| format!("hide: {why}"))?;
        Ok(Answer {
            principal: Some(Principal {
                name: self.name,
                books,
                access,
                hide,
            }),
            // No TTL means the answer is good for this request only.
            ttl_seconds: self.ttl_seconds.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_have_the_contract_shape() {
        let p = Principal {
            name: Some("payments".to_owned()),
            books: Books::Only(["payments".to_owned()].into()),
            access: Access::Rw,
            hide: Hide::NONE,
        };
        assert_eq!(
            serde_json::to_value(IntrospectResponse::active(&p, 60)).expect("json"),
            json!({"active":true,"name":"payments","books":["payments"],"access":"rw","ttl_seconds":60})
        );
        assert_eq!(
            serde_json::to_string(&IntrospectResponse::inactive()).expect("json"),
            r#"{"active":false}"#
        );
        let root = IntrospectResponse::active(&Principal::root(), 5);
        assert_eq!(
            serde_json::to_value(&root).expect("json"),
            json!({"active":true,"books":["*"],"access":"rw","ttl_seconds":5})
        );
        assert_eq!(
            root.decode(),
            Ok(Answer {
                principal: Some(Principal::root()),
                ttl_seconds: 5
            })
        );
    }

    #[test]
    fn hide_policies_travel_and_are_omitted_when_empty() {
        let p = Principal {
            name: Some("browser".to_owned()),
            books: Books::All,
            access: Access::Ro,
            hide: Hide::from_list(&["metadata"]).expect("valid"),
        };
        let answer = IntrospectResponse::active(&p, 30);
        assert_eq!(
            serde_json::to_value(&answer).expect("json"),
            json!({"active":true,"name":"browser","books":["*"],"access":"ro","ttl_seconds":30,"hide":["metadata"]})
        );
        assert_eq!(answer.decode().map(|a| a.principal), Ok(Some(p.clone())));
        let r: IntrospectResponse = serde_json::from_value(
            json!({"active": true, "books": ["*"], "access": "ro", "hide": ["memo", "secret"]}),
        )
        .expect("shape");
        assert!(
            r.decode().is_err(),
            "an unknown hidden field must not be ignored"
        );
    }

    #[test]
    fn malformed_active_answers_are_refused() {
        for bad in [
            json!({"active": true}),
            json!({"active": true, "books": ["a"]}),
            json!({"active": true, "access": "rw"}),
            json!({"active": true, "books": [], "access": "rw"}),
            json!({"active": true, "books": ["*", "a"], "access": "ro"}),
        ] {
            let r: IntrospectResponse = serde_json::from_value(bad.clone()).expect("shape");
            assert!(r.decode().is_err(), "{bad}");
        }
        let r: IntrospectResponse =
            serde_json::from_value(json!({"active": false, "extra": 1})).expect("lenient");
        assert_eq!(r.decode().map(|a| a.principal), Ok(None));
    }

    #[test]
    fn requests_redact_the_token() {
        let r: IntrospectRequest = serde_json::from_str(r#"{"token":"tok-123"}"#).expect("parses");
        assert_eq!(r.token.expose(), "tok-123");
        assert!(!format!("{r:?}").contains("tok-123"));
        assert!(serde_json::from_str::<IntrospectRequest>(r#"{"token":"t","x":1}"#).is_err());
    }
}
