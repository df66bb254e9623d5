//! Paths into a document: `author.name`, `tags.0`, and the pseudo-paths of a document's own
//! columns (`_id`, `_revision`, `_created`, `_updated`).

use std::fmt;

use crate::DocError;

/// The most segments a path may have.
pub const MAX_PATH_DEPTH: usize = 16;
/// The longest a segment may be, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 64;

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A key of an object.
    Key(String),
    /// An element of an array (a segment made only of digits).
    Index(u32),
}

/// A document's own columns, addressable as paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pseudo {
    /// `_id`: the document id (a string).
    Id,
    /// `_revision`: the revision (a number, 1 for a new document).
    Revision,
    /// `_created`: creation time, milliseconds since the Unix epoch.
    Created,
    /// `_updated`: time of the last write, milliseconds since the Unix epoch.
    Updated,
}

impl Pseudo {
    /// The reserved top-level names; documents may not use them as keys.
    pub const NAMES: [&'static str; 4] = ["_id", "_revision", "_created", "_updated"];

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "_id" => Self::Id,
            "_revision" => Self::Revision,
            "_created" => Self::Created,
            "_updated" => Self::Updated,
            _ => return None,
        })
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Revision => "revision",
            Self::Created => "created_at",
            Self::Updated => "updated_at",
        }
    }
}

/// A validated path: dot-separated segments of letters, digits, `_` and `-`; a segment made
/// only of digits is an array index (so an object key made only of digits cannot be addressed).
///
/// ```
/// # use ucms_documents::{Path, Segment};
/// let path = Path::parse("author.tags.0").unwrap();
/// assert_eq!(path.segments()[2], Segment::Index(0));
/// assert!(Path::parse("a..b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Path {
    text: String,
    segments: Vec<Segment>,
    pseudo: Option<Pseudo>,
}

impl Path {
    pub fn parse(text: &str) -> Result<Self, DocError> {
        let bad = |why: &str| {
            DocError::invalid(format!(
                "invalid path `{}`: {why}; a path is dot-separated keys of letters, digits, `_` and `-` (such as `author.name`), a number selects an array element (`tags.0`)",
                text.escape_debug()
            ))
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(pseudo) = Pseudo::from_name(text) {
            return Ok(Self {
                text: text.to_owned(),
                segments: vec![Segment::Key(text.to_owned())],
                pseudo: Some(pseudo),
            });
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            if part.is_empty() {
                return Err(bad("it has an empty segment"));
            }
            if part.len() > MAX_SEGMENT_BYTES {
                return Err(bad(&format!(
                    "a segment is longer than {MAX_SEGMENT_BYTES} bytes"
                )));
            }
            if let Some(c) = part
                .chars()
                .find(|c| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
            {
                return Err(bad(&format!("`{}` is not allowed", c.escape_debug())));
            }
            if part.bytes().all(|b| b.is_ascii_digit()) {
                let index = part
                    .parse::<u32>()
                    .ok()
                    .filter(|i| *i < 1_000_000)
                    .ok_or_else(|| bad("an array index is above 999999"))?;
                segments.push(Segment::Index(index));
            } else {
                segments.push(Segment::Key(part.to_owned()));
            }
            if segments.len() > MAX_PATH_DEPTH {
                return Err(bad(&format!("it has more than {MAX_PATH_DEPTH} segments")));
            }
        }
        if let Some(Segment::Key(first)) = segments.first()
            && Pseudo::from_name(first).is_some()
        {
            return Err(bad(&format!(
                "`{first}` is a column of the document, not an object; it has no fields"
            )));
        }
        if matches!(segments.first(), Some(Segment::Index(_))) {
            return Err(bad("a document is an object, so a path starts with a key"));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
            pseudo: None,
        })
    }

    /// A path to one of the document's own columns.
    pub fn pseudo(pseudo: Pseudo) -> Self {
        let name = match pseudo {
            Pseudo::Id => "_id",
            Pseudo::Revision => "_revision",
            Pseudo::Created => "_created",
            Pseudo::Updated => "_updated",
        };
        Self::parse(name).expect("pseudo paths are valid")
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments; for a pseudo-path, its one name.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The column this path names, if it is a pseudo-path.
    pub fn as_pseudo(&self) -> Option<Pseudo> {
        self.pseudo
    }

    /// Whether any segment is an array index.
    pub fn has_index(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Index(_)))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({:?})", self.text)
    }
}

impl std::str::FromStr for Path {
    type Err = DocError;
    fn from_str(s: &str) -> Result<Self, DocError> {
        Self::parse(s)
    }
}

impl serde::Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Path {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let p = Path::parse("a.b-c.0.d_e").unwrap();
        assert_eq!(
            p.segments(),
            &[
                Segment::Key("a".into()),
                Segment::Key("b-c".into()),
                Segment::Index(0),
                Segment::Key("d_e".into())
            ]
        );
        assert!(Path::parse("clé.été").is_ok());
        assert_eq!(Path::parse("_id").unwrap().as_pseudo(), Some(Pseudo::Id));
        assert_eq!(Path::parse("_idx").unwrap().as_pseudo(), None);
        for bad in [
            "", ".", "a.", ".a", "a..b", "a b", "a'b", "a\"b", "a[0]", "$.a", "0.a", "_id.x",
            "a\\b", "a\u{0}",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let deep = vec!["a"; MAX_PATH_DEPTH + 1].join(".");
        assert!(Path::parse(&deep).is_err());
        assert!(Path::parse(&"a".repeat(MAX_SEGMENT_BYTES + 1)).is_err());
    }
}
