//! Reading and updating `.env` files while keeping every line we do not own.

use std::path::Path;

/// The value of `key` in the file's text, if present.
pub(crate) fn get(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_owned())
    })
}

/// `text` with `key` set to `value`: replaced in place, or appended.
pub(crate) fn set(text: &str, key: &str, value: &str) -> String {
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some((k, _)) if k.trim() == key => {
                found = true;
                format!("{key}={value}")
            }
            _ => line.to_owned(),
        })
        .collect();
    if !found {
        out.push(format!("{key}={value}"));
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// Reads the file, or empty text when it does not exist.
pub(crate) fn read(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_or_appends_and_keeps_other_lines() {
        let text = "# mine\nA=1\nTALEA_BIND=0.0.0.0:1\n";
        let text = set(text, "TALEA_BIND", "127.0.0.1:8080");
        let text = set(&text, "TALEA_API_TOKEN", "t");
        assert_eq!(
            text,
            "# mine\nA=1\nTALEA_BIND=127.0.0.1:8080\nTALEA_API_TOKEN=t\n"
        );
        assert_eq!(get(&text, "TALEA_API_TOKEN").as_deref(), Some("t"));
        assert_eq!(get(&text, "NOPE"), None);
    }
}
