//! Checkpoints: signing, verifying, and every refusal.

use super::*;

const TIME: &str = "2026-12-07T01:02:03.456789Z";

fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

fn keys() -> KeyList {
    KeyList {
        keys: vec![
            SigningKey::from_seed(&[1; 32]).public_key(),
            key().public_key(),
        ],
    }
}

#[test]
fn a_signed_checkpoint_verifies_and_round_trips() {
    let cp = key().sign("main", 3, &[9; 32], TIME).expect("sign");
    assert_eq!(cp.key_id.len(), 16);
    assert_eq!(cp.signature.len(), 128);
    assert_eq!(cp.verify(&keys()), Ok(()));
    let text = serde_json::to_string(&cp).expect("json");
    let back: Checkpoint = serde_json::from_str(&text).expect("json");
    assert_eq!(back.verify(&keys()), Ok(()));
    assert_eq!(
        cp.message().expect("message"),
        format!(
            "talea-checkpoint v1\nmain\n3\n{}\n{TIME}\n",
            to_hex(&[9; 32])
        )
    );
}

#[test]
fn any_change_breaks_the_signature() {
    let cp = key().sign("main", 3, &[9; 32], TIME).expect("sign");
    let mut changes = vec![cp.clone(); 5];
    changes[0].book = "mainx".into();
    changes[1].tree_size = 4;
    changes[2].root_hash = to_hex(&[8; 32]);
    changes[3].timestamp = "2026-12-07T01:02:03.456788Z".into();
    changes[4].signature = to_hex(&[0; 64]);
    for changed in changes {
        assert_eq!(changed.verify(&keys()), Err(CheckpointError::BadSignature));
    }
}

#[test]
fn bad_fields_and_keys_are_refused() {
    let signer = key();
    assert_eq!(
        signer.sign("", 1, &[0; 32], TIME),
        Err(CheckpointError::BadBook)
    );
    assert_eq!(
        signer.sign("a\nb", 1, &[0; 32], TIME),
        Err(CheckpointError::BadBook)
    );
    for time in [
        "2026-12-07T01:02:03Z",
        "2026-13-07T01:02:03.456789Z",
        "2026-12-07 01:02:03.456789Z",
        "2026-12-07T01:02:03.456789+00:00",
        "",
    ] {
        assert!(matches!(
            signer.sign("main", 1, &[0; 32], time),
            Err(CheckpointError::BadTimestamp(_))
        ));
    }
    let cp = signer.sign("main", 1, &[0; 32], TIME).expect("sign");
    let mut unknown = cp.clone();
    unknown.key_id = "0000000000000000".into();
    assert!(matches!(
        unknown.verify(&keys()),
        Err(CheckpointError::UnknownKey(_))
    ));
    let mut short = cp.clone();
    short.signature.truncate(64);
    assert!(matches!(
        short.verify(&keys()),
        Err(CheckpointError::Hex {
            field: "signature",
            ..
        })
    ));
    let mut root = cp.clone();
    root.root_hash = root.root_hash[..32].into();
    assert!(matches!(
        root.verify(&keys()),
        Err(CheckpointError::Hex {
            field: "root_hash",
            ..
        })
    ));

    let mut lying = signer.public_key();
    lying.key_id = SigningKey::from_seed(&[1; 32]).key_id();
    assert!(matches!(
        lying.verifying_key(),
        Err(CheckpointError::KeyIdMismatch { .. })
    ));
    let mut rsa = signer.public_key();
    rsa.algorithm = "rsa".into();
    assert!(matches!(
        rsa.verifying_key(),
        Err(CheckpointError::Algorithm(_))
    ));
    // Another key's signature under this key's id.
    let forged = SigningKey::from_seed(&[1; 32])
        .sign("main", 1, &[0; 32], TIME)
        .expect("sign");
    let mut forged_id = forged;
    forged_id.key_id = signer.key_id();
    assert_eq!(
        forged_id.verify(&keys()),
        Err(CheckpointError::BadSignature)
    );
}

#[test]
fn key_files_round_trip_and_hide_the_seed() {
    let signer = SigningKey::generate([42; 32]);
    let text = signer.key_file_text();
    assert_eq!(
        text,
        format!(
            "{{\"algorithm\":\"ed25519\",\"seed\":\"{}\"}}\n",
            to_hex(&[42; 32])
        )
    );
    let back = SigningKey::from_key_file_text(&text).expect("key file");
    assert_eq!(back.public_key(), signer.public_key());
    assert!(!format!("{signer:?}").contains(&to_hex(&[42; 32])));
    for bad in [
        "",
        "{}",
        "[]",
        "{\"algorithm\":\"ed25519\",\"seed\":\"00\"}",
        "{\"algorithm\":\"x\",\"seed\":\"\"}",
    ] {
        assert!(SigningKey::from_key_file_text(bad).is_err(), "{bad}");
    }
    let dir = std::env::temp_dir().join(format!("talea-verify-key-{}", std::process::id()));
    assert!(matches!(
        read_key_file(&dir.join("missing")),
        Err(KeyFileError::Io(_))
    ));
}

/// RFC 8032 §7.1 test 1: the seed gives the published public key.
#[test]
fn rfc8032_test_vector_public_key() {
    let seed = parse_hex::<32>("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .expect("hex");
    assert_eq!(
        to_hex(&SigningKey::from_seed(&seed).public_key_bytes()),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
}
