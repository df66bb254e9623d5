//! Checks on everything a plugin passes in: keys, content types, cursors, ranges.
//!
//! Keys are never used to name stored objects, so these checks are about giving clear errors and
//! keeping keys printable, not about path safety (the backends confine objects on their own).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{BlobError, ByteRange};

/// The longest key, in UTF-8 bytes (S3's limit, and what fits comfortably in an index).
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest content type, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// The content type stored when the caller gives none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

pub(crate) fn key(key: &str) -> Result<(), BlobError> {
    if key.is_empty() {
        return Err(BlobError::Invalid(
            "the blob key is empty: use 1 to 1024 bytes of UTF-8, for example 'images/logo.png'"
                .into(),
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(BlobError::Invalid(format!(
            "the blob key is {} bytes long: keys are at most {MAX_KEY_BYTES} bytes of UTF-8",
            key.len()
        )));
    }
    if let Some((at, c)) = key.char_indices().find(|(_, c)| c.is_control()) {
        return Err(BlobError::Invalid(format!(
            "the blob key has a control character ({}) at byte {at}: keys may not contain NUL, \
             newlines, tabs or other control characters",
            c.escape_unicode()
        )));
    }
    Ok(())
}

pub(crate) fn plugin(plugin: &str) -> Result<(), BlobError> {
    let ok = !plugin.is_empty()
        && plugin.len() <= 128
        && plugin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(BlobError::Invalid(format!(
            "'{}' is not a plugin id the blob store accepts: use 1 to 128 letters, digits, '-' or '_'",
            plugin.escape_debug()
        )))
    }
}

/// Checks `type/subtype[; name=value]*` (RFC 9110 tokens) and returns it trimmed; empty means
/// [`DEFAULT_CONTENT_TYPE`].
pub(crate) fn content_type(value: &str) -> Result<String, BlobError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(DEFAULT_CONTENT_TYPE.to_string());
    }
    let bad = |why: &str| {
        BlobError::Invalid(format!(
            "'{}' is not a valid content type ({why}): use type/subtype, for example 'image/png' \
             or 'text/plain; charset=utf-8'",
            value.escape_debug()
        ))
    };
    if value.len() > MAX_CONTENT_TYPE_BYTES {
        return Err(bad("longer than 255 bytes"));
    }
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return Err(bad("no '/' between type and subtype"));
    };
    if !is_token(kind) || !is_token(subtype) {
        return Err(bad("type and subtype must be non-empty tokens"));
    }
    for parameter in parts {
        let Some((name, val)) = parameter.trim().split_once('=') else {
            return Err(bad("a parameter is not name=value"));
        };
        let quoted = val.len() >= 2 && val.starts_with('"') && val.ends_with('"');
        let val_ok = if quoted {
            val[1..val.len() - 1]
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        } else {
            is_token(val)
        };
        if !is_token(name) || !val_ok {
            return Err(bad("a parameter is not name=value"));
        }
    }
    Ok(value.to_string())
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Resolves a requested range against a blob of `size` bytes: `start..end`, `end` clamped to the size.
pub(crate) fn range(range: Option<ByteRange>, size: u64) -> Result<(u64, u64), BlobError> {
    let Some(ByteRange { start, end }) = range else {
        return Ok((0, size));
    };
    if start > size {
        return Err(BlobError::Range(format!(
            "the range starts at byte {start} but the blob has {size} bytes: start at most at {size}"
        )));
    }
    let end = end.unwrap_or(size);
    if end < start {
        return Err(BlobError::Range(format!(
            "the range ends (byte {end}, exclusive) before it starts (byte {start}): give end >= start"
        )));
    }
    Ok((start, end.min(size)))
}

pub(crate) fn encode_cursor(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key.as_bytes())
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<String, BlobError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        // A cursor is a key this store returned, and keys have no control characters.
        .filter(|key| !key.chars().any(char::is_control))
        .ok_or_else(|| {
            BlobError::Invalid(
                "the list cursor is not one this store returned: pass back the cursor from the \
                 previous page unchanged, or none to start over"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for good in [
            "a",
            "images/logo.png",
            "../../etc/passwd",
            "/etc/passwd",
            "ünï/çødé/🦀",
            "a b",
        ] {
            assert_eq!(key(good), Ok(()), "{good:?}");
        }
        let long = "k".repeat(MAX_KEY_BYTES);
        assert_eq!(key(&long), Ok(()));
        for (bad, says) in [
            ("", "empty"),
            ("a\0b", "control character (\\u{0}) at byte 1"),
            ("a\nb", "control character"),
            ("\u{7f}", "control character"),
            ("\u{85}x", "control character"),
        ] {
            let err = key(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
        let err = key(&format!("{long}k")).unwrap_err().to_string();
        assert!(err.contains("1025 bytes"), "{err}");
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("").unwrap(), DEFAULT_CONTENT_TYPE);
        assert_eq!(content_type(" image/png ").unwrap(), "image/png");
        assert!(content_type("text/plain; charset=utf-8").is_ok());
        assert!(content_type("multipart/form-data; boundary=\"a b\"").is_ok());
        assert!(content_type("application/vnd.api+json").is_ok());
        for bad in [
            "png",
            "image/",
            "/png",
            "image/png;",
            "image/p ng",
            "text/plain\r\nX: y",
            "a/b; c",
        ] {
            let err = content_type(bad).unwrap_err().to_string();
            assert!(
                err.contains("is not a valid content type"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), Ok((0, 10)));
        let r = |start, end| Some(ByteRange { start, end });
        assert_eq!(range(r(2, Some(5)), 10), Ok((2, 5)));
        assert_eq!(range(r(2, None), 10), Ok((2, 10)));
        assert_eq!(range(r(2, Some(50)), 10), Ok((2, 10)));
        assert_eq!(range(r(10, None), 10), Ok((10, 10)));
        assert!(matches!(range(r(11, None), 10), Err(BlobError::Range(_))));
        assert!(matches!(range(r(5, Some(4)), 10), Err(BlobError::Range(_))));
    }

    #[test]
    fn cursors_round_trip() {
        for k in ["a", "ünï/🦀", "x/y z"] {
            assert_eq!(decode_cursor(&encode_cursor(k)).unwrap(), k);
        }
        assert!(matches!(decode_cursor("!!"), Err(BlobError::Invalid(_))));
    }
}
