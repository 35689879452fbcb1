//! `talea import`'s input: NDJSON read one line at a time under a length
//! cap, and each line checked as the body of one post (JSON, shape,
//! idempotency key) before anything of it is sent.

use std::io::{self, BufRead, BufReader, Read as _};
use std::path::Path;

use serde_json::Value;
use talea_api::{PostTransactionRequest, canonical_json};
use talea_core::IdempotencyKey;
use talea_core::limits::BODY_BYTES_MAX;
use talea_verify::hash::{Hash, sha256};

use crate::Failure;

/// Longest line, in bytes without its line end: the server's body limit
/// for one post, since a line is one post's body.
pub(crate) const LINE_BYTES_MAX: usize = BODY_BYTES_MAX;
/// A UTF-8 byte order mark, allowed (and dropped) at the start of the file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The input, read one line at a time.
pub(crate) struct Input {
    reader: Box<dyn BufRead>,
    /// The number of the last line read (1-based).
    pub line: u64,
    /// Bytes read so far.
    pub bytes: u64,
}

/// One line of the input, without its line end.
pub(crate) enum Line {
    Text(Vec<u8>),
    /// Longer than `LINE_BYTES_MAX`; the rest of it was skipped.
    TooLong,
}

impl Input {
    /// Opens `path` (`-`: stdin), with its size when it is a file.
    pub(crate) fn open(path: &Path) -> Result<(Self, Option<u64>, String), Failure> {
        let (reader, size, name): (Box<dyn BufRead>, _, _) = if path == Path::new("-") {
            (Box::new(io::stdin().lock()), None, "stdin".to_owned())
        } else {
            let what = path.display().to_string();
            let file = std::fs::File::open(path)
                .map_err(|e| Failure::Usage(format!("cannot read {what}: {e}")))?;
            let size = file
                .metadata()
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len());
            (
                Box::new(BufReader::with_capacity(64 * 1024, file)),
                size,
                what,
            )
        };
        let input = Self {
            reader,
            line: 0,
            bytes: 0,
        };
        Ok((input, size, name))
    }

    /// The next line, or `None` at the end. A line is cut at `\n` (a `\r`
    /// before it is dropped too); the last one needs no line end.
    pub(crate) fn next(&mut self) -> io::Result<Option<Line>> {
        // The longest line allowed and a "\r\n" after it: a read that fills
        // this without a "\n" is a line too long.
        let cap = LINE_BYTES_MAX as u64 + 2;
        let mut text = Vec::new();
        let read = (&mut self.reader).take(cap).read_until(b'\n', &mut text)?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.bytes += read as u64;
        let ended = text.last() == Some(&b'\n');
        if !ended && read as u64 == cap {
            self.bytes += self.reader.skip_until(b'\n')? as u64;
            return Ok(Some(Line::TooLong));
        }
        if ended {
            text.pop();
            if text.last() == Some(&b'\r') {
                text.pop();
            }
        }
        if text.len() > LINE_BYTES_MAX {
            return Ok(Some(Line::TooLong));
        }
        if self.line == 1 && text.starts_with(BOM) {
            text.drain(..BOM.len());
        }
        Ok(Some(Line::Text(text)))
    }
}

/// A line's request, with what the checks need to know of it.
pub(crate) struct Checked {
    pub request: PostTransactionRequest,
    /// SHA-256 of the request's canonical JSON: two lines with one key and
    /// equal digests are the same post.
    pub digest: Hash,
    /// Its compact JSON size.
    pub bytes: usize,
}

/// Checks one line as a post body: `Ok(None)` for a blank line, else the
/// request or a local refusal's code and message.
pub(crate) fn check_line(text: &[u8]) -> Result<Option<Checked>, (&'static str, String)> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_slice(text).map_err(|e| ("invalid_json", json_error(&e)))?;
    let Some(object) = value.as_object() else {
        return Err((
            "invalid_request",
            "not a JSON object: each line is one post's body".to_owned(),
        ));
    };
    match object.get("idempotency_key") {
        None | Some(Value::Null) => {
            return Err((
                "missing_idempotency_key",
                "no idempotency_key: every line needs its own, which is what makes a rerun safe"
                    .to_owned(),
            ));
        }
        Some(Value::String(key)) => {
            IdempotencyKey::parse(key)
                .map_err(|e| ("invalid_request", format!("idempotency_key {e}")))?;
        }
        Some(_) => {
            return Err((
                "invalid_request",
                "idempotency_key must be a string".to_owned(),
            ));
        }
    }
    let request: PostTransactionRequest = serde_json::from_value(value)
        .map_err(|e| ("invalid_request", format!("not a post body: {e}")))?;
    // The request as it will be sent: defaults filled in, so that an absent
    // field and its default compare equal in the duplicate check.
    let sent = serde_json::to_value(&request)
        .map_err(|e| ("invalid_request", format!("cannot be encoded: {e}")))?;
    let bytes = sent.to_string().len();
    let digest = sha256(&[canonical_json(&sent).as_bytes()]);
    Ok(Some(Checked {
        request,
        digest,
        bytes,
    }))
}

/// serde_json's message without its "at line 1 column N" (the line is the
/// file's, given apart), the column kept.
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => format!("not valid JSON: {message} (column {})", e.column()),
        None => format!("not valid JSON: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Option<&'static str> {
        check_line(text.as_bytes()).err().map(|(code, _)| code)
    }

    const GOOD: &str = r#"{"idempotency_key":"k-1","postings":[
        {"account":"a","asset":"BTC","debit":"1"},{"account":"b","asset":"BTC","credit":"1"}]}"#;

    #[test]
    fn lines_are_checked_as_post_bodies() {
        assert!(matches!(check_line(b"  \t"), Ok(None)));
        assert!(matches!(check_line(GOOD.as_bytes()), Ok(Some(_))));
        assert_eq!(code("{\"idempotency_key\":"), Some("invalid_json"));
        assert_eq!(code("[1]"), Some("invalid_request"));
        assert_eq!(code(r#"{"postings":[]}"#), Some("missing_idempotency_key"));
        assert_eq!(
            code(r#"{"idempotency_key":null,"postings":[]}"#),
            Some("missing_idempotency_key")
        );
        assert_eq!(code(r#"{"idempotency_key":7}"#), Some("invalid_request"));
        assert_eq!(code(r#"{"idempotency_key":""}"#), Some("invalid_request"));
        assert_eq!(
            code(r#"{"idempotency_key":"k","postings":[],"colour":"red"}"#),
            Some("invalid_request")
        );
    }

    #[test]
    fn json_errors_name_the_column_not_line_1() {
        let message = check_line(b"{\"a\" 1}").err().map(|(_, m)| m);
        assert_eq!(
            message.as_deref(),
            Some("not valid JSON: expected `:` (column 6)")
        );
    }

    #[test]
    fn an_absent_default_and_its_value_are_the_same_body() {
        let explicit = GOOD.replacen('{', r#"{"pending":false,"memo":null,"#, 1);
        let digest = |t: &str| match check_line(t.as_bytes()) {
            Ok(Some(c)) => Some(c.digest),
            _ => None,
        };
        assert!(digest(GOOD).is_some());
        assert_eq!(digest(GOOD), digest(&explicit));
        assert_ne!(digest(GOOD), digest(&GOOD.replace("\"1\"", "\"2\"")));
    }
}
