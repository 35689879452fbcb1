//! The verifiable log through talead: `init` makes the signing key once and
//! keeps it, `serve` signs with it (`GET /v1/keys`), the chain of a book
//! written before the chain existed is computed when talead opens the
//! store, and `talead audit` finds a row changed behind the store's back,
//! exiting 4.

use serde_json::{Value, json};

use crate::{start_with, talead};

async fn get(api: &str, path: &str, token: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{api}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

async fn post(api: &str, path: &str, token: &str, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{api}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("answered");
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[tokio::test]
async fn init_keeps_one_key_serve_signs_with_it_and_audit_finds_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let init = || {
        let out = talead(dir.path()).arg("init").output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(init().contains("generated a checkpoint signing key"));
    let key_file = dir.path().join("talea-data/signing-key.json");
    let key = std::fs::read_to_string(&key_file).expect("key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key file is its owner's only");
    }
    assert!(init().contains("keeping the checkpoint signing key"));
    assert_eq!(std::fs::read_to_string(&key_file).expect("key file"), key);
    let signing = talea_verify::checkpoint::SigningKey::from_key_file_text(&key).expect("a key");

    let server = start_with(
        dir.path(),
        &[("TALEA_API_TOKEN", "t"), ("TALEA_CHECKPOINT_EVERY", "1")],
    );
    let api = server.api.clone();
    post(&api, "/v1/assets", "t", json!({"code": "BTC", "scale": 8})).await;
    for (name, kind) in [("hot", "asset"), ("alice", "liability")] {
        post(
            &api,
            "/v1/books/demo/accounts",
            "t",
            json!({"name": name, "kind": kind}),
        )
        .await;
    }
    post(
        &api,
        "/v1/books/demo/transactions",
        "t",
        json!({"idempotency_key": "k1", "memo": "first", "postings": [
            {"account": "hot", "asset": "BTC", "debit": "0.5"},
            {"account": "alice", "asset": "BTC", "credit": "0.5"}]}),
    )
    .await;
    let keys: talea_verify::checkpoint::KeyList =
        serde_json::from_value(get(&api, "/v1/keys", "t").await).expect("keys");
    assert_eq!(
        keys.keys[0].key_id,
        signing.key_id(),
        "served: the key in the file"
    );
    let head: talea_verify::checkpoint::Checkpoint =
        serde_json::from_value(get(&api, "/v1/books/demo/checkpoint", "t").await).expect("head");
    head.verify(&keys).expect("signed by the key in the file");
    drop(server);

    let audit = |book: &str| {
        talead(dir.path())
            .args(["audit", "--book", book])
            .output()
            .expect("runs")
    };
    let out = audit("demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["findings"], json!([]));
    assert_eq!(report["last_seq"], 3);

    // A row changed behind the store's back: found at its seq, exit 4.
    let db = dir.path().join("talea-data/talea.db");
    tamper_with_sqlx(&db).await;
    let out = audit("demo");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["first_bad_seq"], 3, "{report}");
    let out = talead(dir.path()).args(["audit"]).output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--book"));
}

async fn tamper_with_sqlx(db: &std::path::Path) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .expect("opens the file");
    sqlx::query("UPDATE transactions SET memo = 'rewritten' WHERE book = 'demo' AND seq = 3")
        .execute(&mut conn)
        .await
        .expect("tampers");
}
