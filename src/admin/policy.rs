//! `GET /policy`: the policy version in force and the policy as loaded (its TOML as JSON).
//! Secrets in the policy are references (`env:NAME`, `file:path`); any other value under a
//! secret-looking key, and any value the secret scanner recognises, is masked anyway.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{AdminState, Role};
use crate::core::rules::secrets::find_secret;

/// What replaces a masked value.
pub const MASK: &str = "***masked***";

/// Key names whose values are secrets unless they are references.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "private",
        "credential",
        "api_key",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// A reference to a secret, not the secret.
fn is_reference(v: &str) -> bool {
    v.starts_with("env:") || v.starts_with("file:")
}

/// Masks secret-looking values in place.
pub fn mask(value: &mut Value, key: Option<&str>) {
    match value {
        Value::String(s) => {
            let by_key = key.is_some_and(secret_key) && !is_reference(s);
            if by_key || find_secret(s.as_bytes()).is_some() {
                *s = MASK.to_string();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, key)),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                mask(v, Some(k.as_str()));
            }
        }
        _ => {}
    }
}

/// The policy text as masked JSON.
pub fn masked_policy(text: &str) -> Result<Value, String> {
    let parsed: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut json = serde_json::to_value(parsed).map_err(|e| e.to_string())?;
    mask(&mut json, None);
    Ok(json)
}

/// `GET /policy` (gate only).
pub async fn handler(State(state): State<AdminState>) -> Response {
    let Role::Gate(g) = &state.role else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not_found", "message": "the sink has no policy"})),
        )
            .into_response();
    };
    let Some((version, text)) = g.board().and_then(|b| b.policy.clone()) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no policy loaded").into_response();
    };
    match masked_policy(&text) {
        Ok(policy) => {
            Json(serde_json::json!({"version": version, "policy": policy})).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_stay_and_secrets_are_masked() {
        let text = r#"
            [integrations.a]
            keys = [ { id = "h", secret = "file:keys/a.hmac" }, { id = "x", secret = "inline-oops" } ]
            description = "AKIAABCDEFGHIJKLMNOP leaked"
            [limits]
            max = 3
        "#;
        let v = masked_policy(text).unwrap();
        let keys = &v["integrations"]["a"]["keys"];
        assert_eq!(keys[0]["secret"], "file:keys/a.hmac");
        assert_eq!(keys[1]["secret"], MASK);
        assert_eq!(keys[1]["id"], "x");
        assert_eq!(v["integrations"]["a"]["description"], MASK);
        assert_eq!(v["limits"]["max"], 3);
    }

    #[test]
    fn the_shipped_policy_shows_no_secret() {
        let text = include_str!("../../deploy/policy.toml");
        let v = masked_policy(text).unwrap();
        let out = v.to_string();
        assert!(out.contains("ai_assistant"));
        assert!(find_secret(out.as_bytes()).is_none());
    }
}
