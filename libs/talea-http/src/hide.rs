//! Field scopes on REST responses: a token's hidden fields (`hide = [...]`
//! in the tokens file) are removed from the body before it is written.
//!
//! Only transactions (`memo`, `metadata`) and accounts (`metadata`) carry
//! hideable fields, always at the top level of the resource object; a
//! [`Carrier`] says where the resources sit in a response body. A token
//! that hides nothing takes the usual path (the DTO serialized as is).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use talea_auth::Hide;

use crate::json_response;

/// Where a response body holds the resources that may carry hidden fields.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Carrier {
    /// The body is one transaction or account.
    Resource,
    /// The body's `key` is an array of them (`transactions`, `accounts`).
    List(&'static str),
    /// The body's `events` is an array of events whose `data` is one.
    Events,
}

impl Carrier {
    /// Removes the `hide` fields from the resources of `body`.
    pub(crate) fn strip(self, hide: Hide, body: &mut Value) {
        match self {
            Self::Resource => hide.strip_value(body),
            Self::List(key) => {
                if let Some(items) = body.get_mut(key).and_then(Value::as_array_mut) {
                    items.iter_mut().for_each(|item| hide.strip_value(item));
                }
            }
            Self::Events => {
                if let Some(events) = body.get_mut("events").and_then(Value::as_array_mut) {
                    for event in events {
                        if let Some(data) = event.get_mut("data") {
                            hide.strip_value(data);
                        }
                    }
                }
            }
        }
    }
}

/// The JSON response of `body` as `hide` may see it.
pub(crate) fn respond<T: Serialize>(
    status: StatusCode,
    body: &T,
    hide: Hide,
    carrier: Carrier,
) -> Response {
    if hide.is_empty() {
        return json_response(status, body);
    }
    match serde_json::to_value(body) {
        Ok(mut value) => {
            carrier.strip(hide, &mut value);
            json_response(status, &value)
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn carriers_strip_their_resources_only() {
        let hide = Hide::from_list(&["metadata", "memo"]).expect("valid");
        let mut list = json!({
            "transactions": [{"seq": 1, "memo": "m", "metadata": {}}, {"seq": 2, "memo": null}],
            "next_after_seq": null,
        });
        Carrier::List("transactions").strip(hide, &mut list);
        assert_eq!(
            list,
            json!({"transactions": [{"seq": 1}, {"seq": 2}], "next_after_seq": null})
        );
        let mut events = json!({"events": [
            {"seq": 1, "type": "account_opened", "data": {"name": "a", "metadata": {"k": 1}}},
            {"seq": 2, "type": "transaction", "data": {"memo": "m", "metadata": null}},
        ], "next_after_seq": null});
        Carrier::Events.strip(hide, &mut events);
        assert_eq!(events["events"][0]["data"], json!({"name": "a"}));
        assert_eq!(events["events"][1]["data"], json!({}));
        let mut account = json!({"name": "a", "metadata": {"memo": 1}});
        Carrier::Resource.strip(Hide::from_list(&["memo"]).expect("valid"), &mut account);
        assert_eq!(account, json!({"name": "a", "metadata": {"memo": 1}}));
    }
}
