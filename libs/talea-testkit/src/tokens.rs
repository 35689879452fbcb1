//! Tokens files for a test: the TOML a talead or talea-scope decides from,
//! built from [`Token`]s so no test spells the tables by hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One `[tokens.<name>]` table: a bearer token (or its SHA-256), the books
/// it reaches, `ro`/`rw`, and the fields it hides.
#[derive(Clone, Debug)]
pub struct Token {
    name: String,
    /// `("token", plain)` or `("token_sha256", hex digest)`.
    secret: (&'static str, String),
    books: Vec<String>,
    access: &'static str,
    hide: Vec<String>,
}

impl Token {
    /// A read-write token named `name` for `books` (`"*"` for all).
    pub fn rw(name: &str, token: &str, books: &[&str]) -> Self {
        Self::new(name, token, books, "rw")
    }

    /// A read-only token named `name` for `books` (`"*"` for all).
    pub fn ro(name: &str, token: &str, books: &[&str]) -> Self {
        Self::new(name, token, books, "ro")
    }

    fn new(name: &str, token: &str, books: &[&str], access: &'static str) -> Self {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "token name {name:?} is not a bare TOML key"
        );
        Self {
            name: name.to_owned(),
            secret: ("token", token.to_owned()),
            books: books.iter().map(|b| (*b).to_owned()).collect(),
            access,
            hide: Vec::new(),
        }
    }

    /// Stores the token as `token_sha256 = digest` (lowercase hex) instead
    /// of in plain.
    pub fn sha256(mut self, digest: &str) -> Self {
        self.secret = ("token_sha256", digest.to_owned());
        self
    }

    /// Hides `fields` from the token's answers (`hide = [...]`).
    pub fn hide(mut self, fields: &[&str]) -> Self {
        self.hide = fields.iter().map(|f| (*f).to_owned()).collect();
        self
    }
}

/// A TOML string, in the quoting JSON and TOML share.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

/// The tokens file holding `tokens`, one `[tokens.<name>]` table each, for
/// `TokenSet::parse_file` or [`tokens_file`].
pub fn tokens_toml(tokens: &[Token]) -> String {
    let mut toml = String::new();
    for t in tokens {
        let (key, secret) = &t.secret;
        let _ = writeln!(toml, "[tokens.{}]", t.name);
        let _ = writeln!(toml, "{key} = {}", quoted(secret));
        let _ = writeln!(toml, "books = {}", array(&t.books));
        let _ = writeln!(toml, "access = {}", quoted(t.access));
        if !t.hide.is_empty() {
            let _ = writeln!(toml, "hide = {}", array(&t.hide));
        }
        toml.push('\n');
    }
    toml
}

/// Writes `toml` (a tokens file, `[tokens.<name>]` tables) to
/// `dir/tokens.toml` and returns its path, for `TALEA_TOKENS_FILE`.
pub fn tokens_file(dir: &Path, toml: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join("tokens.toml");
    std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_tables_a_tokens_file_holds() {
        let toml = tokens_toml(&[
            Token::rw("admin", "admin-secret", &["*"]),
            Token::ro("browser", "b\"x", &["pay", "other"]).hide(&["memo"]),
            Token::ro("auditor", "", &["*"]).sha256("abc123"),
        ]);
        assert_eq!(
            toml,
            "[tokens.admin]\ntoken = \"admin-secret\"\nbooks = [\"*\"]\naccess = \"rw\"\n\n\
             [tokens.browser]\ntoken = \"b\\\"x\"\nbooks = [\"pay\", \"other\"]\naccess = \"ro\"\n\
             hide = [\"memo\"]\n\n\
             [tokens.auditor]\ntoken_sha256 = \"abc123\"\nbooks = [\"*\"]\naccess = \"ro\"\n\n"
        );
    }
}
