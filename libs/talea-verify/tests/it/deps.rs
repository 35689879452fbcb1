//! The crate stays embeddable: its normal dependencies are hashing,
//! signatures, hex, serde, serde_json and ryu-js (JCS numbers) (and thiserror for its errors),
//! never an async runtime, HTTP, a database or another talea crate. The
//! one other is optional and off by default: utoipa, behind the `openapi`
//! feature that the server enables for its OpenAPI document.

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
            "ryu-js",
            "serde",
            "serde_json",
            "sha2",
            "thiserror",
            "utoipa"
        ]
    );
    let utoipa = section
        .lines()
        .find(|line| line.starts_with("utoipa"))
        .expect("utoipa");
    assert!(utoipa.contains("optional = true"), "{utoipa}");
}
