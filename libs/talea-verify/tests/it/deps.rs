//! The crate stays embeddable: its normal dependencies are hashing,
//! signatures, hex, serde and serde_json (and thiserror for its errors),
//! never an async runtime, HTTP, a database or another talea crate.

#[test]
fn only_hashing_signature_and_json_dependencies() {
    let manifest = include_str!("../../Cargo.toml");
    let section = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("a [dependencies] section");
    let names: Vec<&str> = section
        .lines()
        .filter_map(|line| line.split(['.', ' ', '=']).next())
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    assert_eq!(
        names,
        [
            "ed25519-dalek",
            "hex",
            "serde",
            "serde_json",
            "sha2",
            "thiserror"
        ]
    );
}
