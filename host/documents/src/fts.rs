//! Full-text search: languages, and the user's search text parsed once into a structure that is
//! rendered for each backend with every word a bind parameter (SQLite: a quoted FTS5 string, so
//! no FTS5 syntax gets through; PostgreSQL: `plainto_tsquery` / `phraseto_tsquery`).

use std::fmt::Write as _;

use crate::DocError;
use crate::sql::{Bind, Sql};

/// The languages a collection can be searched in: PostgreSQL's built-in text search
/// configurations. `simple` does no stemming and no stop words.
pub const LANGUAGES: &[&str] = &[
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "simple",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
];

/// Most terms in one search text.
const MAX_TERMS: usize = 32;

pub(crate) fn check_language(language: &str) -> Result<(), DocError> {
    if LANGUAGES.contains(&language) {
        Ok(())
    } else {
        Err(DocError::invalid(format!(
            "unknown search language `{}`: use one of {}",
            language.escape_debug(),
            LANGUAGES.join(", ")
        )))
    }
}

/// The FTS5 tokenizer for a language: Porter stemming for English, elsewhere words folded to
/// lower case without diacritics.
pub(crate) fn sqlite_tokenizer(language: &str) -> &'static str {
    if language == "english" {
        "porter unicode61"
    } else {
        "unicode61 remove_diacritics 2"
    }
}

/// One term of a search: a word or a quoted phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub text: String,
    pub phrase: bool,
    pub negated: bool,
}

/// A search: any of the groups; a group matches when all its positive terms match and none of
/// its negated ones do. `a b or c -d` is `(a AND b) OR (c AND NOT d)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub groups: Vec<Vec<Term>>,
}

pub(crate) fn parse(text: &str) -> Parsed {
    let mut groups: Vec<Vec<Term>> = vec![Vec::new()];
    let mut chars = text.chars().peekable();
    let mut terms = 0;
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut negated = false;
        if c == '-' {
            chars.next();
            negated = true;
        }
        let (word, phrase) = if chars.peek() == Some(&'"') {
            chars.next();
            let mut s = String::new();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                s.push(c);
            }
            (s, true)
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            (s, false)
        };
        if !phrase && !negated && word.eq_ignore_ascii_case("or") {
            if groups.last().is_some_and(|g| !g.is_empty()) {
                groups.push(Vec::new());
            }
            continue;
        }
        if !word.chars().any(char::is_alphanumeric) || terms >= MAX_TERMS {
            continue;
        }
        terms += 1;
        groups.last_mut().expect("never empty").push(Term {
            text: word.replace('\0', ""),
            phrase,
            negated,
        });
    }
    // A group of only exclusions cannot be asked of FTS5; drop it on both backends alike.
    groups.retain(|g| g.iter().any(|t| !t.negated));
    Parsed { groups }
}

impl Parsed {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The FTS5 query, as one string to bind to `MATCH`: every term a double-quoted string.
    pub fn fts5(&self) -> String {
        let quote = |t: &Term| format!("\"{}\"", t.text.replace('"', "\"\""));
        self.groups
            .iter()
            .map(|g| {
                let pos: Vec<String> = g.iter().filter(|t| !t.negated).map(quote).collect();
                let neg: Vec<String> = g.iter().filter(|t| t.negated).map(quote).collect();
                let mut s = format!("({})", pos.join(" AND "));
                if !neg.is_empty() {
                    let _ = write!(s, " NOT ({})", neg.join(" OR "));
                }
                format!("({s})")
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    /// Appends the PostgreSQL `tsquery` expression, every term a parameter.
    pub fn tsquery(&self, sql: &mut Sql, language: &str) {
        sql.push("(");
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                sql.push(" || ");
            }
            sql.push("(");
            for (j, t) in g.iter().enumerate() {
                if j > 0 {
                    sql.push(" && ");
                }
                if t.negated {
                    sql.push("!!");
                }
                let function = if t.phrase {
                    "phraseto_tsquery"
                } else {
                    "plainto_tsquery"
                };
                let _ = write!(sql.text, "{function}('{language}'::regconfig, ");
                sql.bind(Bind::Text(t.text.clone())).push(")");
            }
            sql.push(")");
        }
        sql.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_websearch_style() {
        let p = parse(r#"  rust "async io" -java or go  OR  -"x y" "#);
        assert_eq!(p.groups.len(), 2);
        assert_eq!(p.groups[0].len(), 3);
        assert!(p.groups[0][1].phrase);
        assert!(p.groups[0][2].negated);
        assert_eq!(
            p.fts5(),
            r#"(("rust" AND "async io") NOT ("java")) OR (("go"))"#
        );
        assert!(parse("-only -negative").is_empty());
        assert!(parse("or or --- \"\"").is_empty());
        // FTS5 syntax is inert inside quotes.
        assert_eq!(
            parse(r#"a* title:b NEAR(c d) "e""f"#).fts5(),
            r#"(("a*" AND "title:b" AND "NEAR(c" AND "d)" AND "e" AND "f"))"#
        );
    }
}
