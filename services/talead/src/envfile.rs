//! `.env` files: read by dotenvy (the parser every service loads them with), updated here line by line.
//!
//! dotenvy reads but does not write, so `set` is ours: it replaces the
//! key's lines in place and keeps every line we do not own (comments,
//! other variables). It writes a value bare when dotenvy reads it back
//! unchanged, else quoted so that it does (a round-trip test checks this).

use std::path::Path;

/// The value of `key` in the file's text as dotenvy reads it (the first
/// assignment wins, as when dotenvy loads the file).
pub(crate) fn get(text: &str, key: &str) -> Result<Option<String>, dotenvy::Error> {
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (k, v) = item?;
        if k == key {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// `text` with `key` set to `value`: replaced in place, or appended.
pub(crate) fn set(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key}={}", quote(value));
    let mut found = false;
    let mut out: Vec<&str> = text
        .lines()
        .map(|l| {
            if assigns(l, key) {
                found = true;
                line.as_str()
            } else {
                l
            }
        })
        .collect();
    if !found {
        out.push(&line);
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// Whether `line` assigns `key`, written as dotenvy accepts it: `KEY=…`
/// or `export KEY=…`, with blanks around the key.
fn assigns(line: &str, key: &str) -> bool {
    let line = line.trim_start();
    let line = line.strip_prefix("export ").unwrap_or(line);
    line.split_once('=').is_some_and(|(k, _)| k.trim() == key)
}

/// `value` as dotenvy reads it back: bare when it holds only characters
/// dotenvy keeps as they are, in single quotes (no escapes, no `$`
/// substitution) when it has no `'` or newline, else in double quotes with
/// `\`, `"`, `$` and newlines escaped.
fn quote(value: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.:/@+,=%?&~".contains(c);
    if value.chars().all(bare) {
        value.to_owned()
    } else if !value.contains(['\'', '\n']) {
        format!("'{value}'")
    } else {
        let mut quoted = String::with_capacity(value.len() + 2);
        quoted.push('"');
        for c in value.chars() {
            match c {
                '\\' | '"' | '$' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                '\n' => quoted.push_str("\\n"),
                _ => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    }
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
        assert_eq!(
            get(&text, "TALEA_API_TOKEN").expect("parses").as_deref(),
            Some("t")
        );
        assert_eq!(get(&text, "NOPE").expect("parses"), None);
    }

    #[test]
    fn what_set_writes_dotenvy_reads_back_unchanged() {
        for value in [
            "",
            "talea_0123abcd",
            "sqlite://talea-data/talea.db",
            "postgres://u:p%40ss@db:5432/talea?sslmode=require&x=1",
            "p@ss w#rd",
            "$HOME and ${USER}",
            "it's \"quoted\" \\ and $HOME",
            "two\nlines",
        ] {
            let text = set("# kept\nexport TALEA_DB_URL=old\n", "TALEA_DB_URL", value);
            assert!(text.starts_with("# kept\n"), "{text}");
            assert_eq!(
                get(&text, "TALEA_DB_URL").expect("parses").as_deref(),
                Some(value),
                "{text}"
            );
        }
    }

    #[test]
    fn get_reads_as_dotenvy_does() {
        let text = "export A=1\nB = 'x y' # note\nC=\"a\\\"b\"\nA=2\n";
        assert_eq!(get(text, "A").expect("parses").as_deref(), Some("1"));
        assert_eq!(get(text, "B").expect("parses").as_deref(), Some("x y"));
        assert_eq!(get(text, "C").expect("parses").as_deref(), Some("a\"b"));
        assert!(get("A='open\n", "A").is_err());
    }
}
