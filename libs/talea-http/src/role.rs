//! What an instance serves: `all` (default), `write` (everything) or `read` (GET routes only).

use std::fmt;
use std::str::FromStr;

/// The instance's role (`talead serve --role`, `TALEA_ROLE`). A load balancer
/// sends writes to `write` (or `all`) instances and may send reads anywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Reads and writes: one deployment does everything.
    #[default]
    All,
    /// The write deployment; it serves reads too (a client reading its own
    /// writes right after a 201 needs no second hop).
    Write,
    /// The read deployment: every GET route; writes are answered 405 with
    /// an `Allow` header, so a misrouted write fails loudly and is never applied.
    Read,
}

impl Role {
    /// Whether write routes are served here.
    pub fn serves_writes(self) -> bool {
        !matches!(self, Self::Read)
    }

    /// The name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Write => "write",
            Self::Read => "read",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "write" => Ok(Self::Write),
            "read" => Ok(Self::Read),
            other => Err(format!(
                "unknown role {other:?}: expected write, read or all"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_roles() {
        for role in [Role::All, Role::Write, Role::Read] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("Read".parse::<Role>().is_err());
        assert!(Role::Write.serves_writes() && !Role::Read.serves_writes());
        assert_eq!(Role::default(), Role::All);
    }
}
