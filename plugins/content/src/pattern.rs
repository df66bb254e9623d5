//! The `pattern` validation of text fields: a small subset of regular expressions matched in
//! linear-by-quadratic time (no backtracking), so a pattern from a type definition can never make
//! a save slow. Literal characters, `.`, classes `[a-z0-9_-]` (and `[^…]`), `\d \w \s` and escaped
//! punctuation, the quantifiers `? * + {m} {m,} {m,n}` on one item, and `^` / `$` anchors.

use std::fmt;

#[derive(Debug, Clone)]
pub struct Pattern {
    items: Vec<Item>,
    start: bool,
    end: bool,
}

#[derive(Debug, Clone)]
struct Item {
    class: Class,
    min: usize,
    max: usize,
}

#[derive(Debug, Clone)]
enum Class {
    Any,
    Char(char),
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const MAX_PATTERN: usize = 256;
const MAX_REPEAT: usize = 1000;

fn err<T>(m: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(m.into()))
}

fn escape(c: char) -> Result<Class, PatternError> {
    Ok(match c {
        'd' => Class::Set {
            negated: false,
            ranges: vec![('0', '9')],
        },
        'w' => Class::Set {
            negated: false,
            ranges: vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')],
        },
        's' => Class::Set {
            negated: false,
            ranges: vec![(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')],
        },
        c if c.is_ascii_punctuation() => Class::Char(c),
        c => {
            return err(format!(
                "'\\{c}' is not supported (use \\d, \\w, \\s or escape punctuation)"
            ));
        }
    })
}

impl Pattern {
    pub fn parse(p: &str) -> Result<Self, PatternError> {
        if p.len() > MAX_PATTERN {
            return err(format!("a pattern is at most {MAX_PATTERN} characters"));
        }
        let chars: Vec<char> = p.chars().collect();
        let mut i = 0;
        let mut items: Vec<Item> = Vec::new();
        let start = chars.first() == Some(&'^');
        if start {
            i = 1;
        }
        let mut end = false;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            let class = match c {
                '$' if i == chars.len() => {
                    end = true;
                    break;
                }
                '.' => Class::Any,
                '\\' => {
                    let Some(&e) = chars.get(i) else {
                        return err("the pattern ends with a lone '\\'");
                    };
                    i += 1;
                    escape(e)?
                }
                '[' => {
                    let negated = chars.get(i) == Some(&'^');
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let Some(&c) = chars.get(i) else {
                            return err("a '[' class is not closed with ']'");
                        };
                        i += 1;
                        if c == ']' && !ranges.is_empty() {
                            break;
                        }
                        let c = if c == '\\' {
                            let Some(&e) = chars.get(i) else {
                                return err("a '[' class is not closed with ']'");
                            };
                            i += 1;
                            match escape(e)? {
                                Class::Char(c) => c,
                                Class::Set { ranges: r, .. } => {
                                    ranges.extend(r);
                                    continue;
                                }
                                Class::Any => unreachable_any()?,
                            }
                        } else {
                            c
                        };
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']')
                        {
                            let hi = chars[i + 1];
                            i += 2;
                            if hi < c {
                                return err(format!("the range {c}-{hi} is backwards"));
                            }
                            ranges.push((c, hi));
                        } else {
                            ranges.push((c, c));
                        }
                    }
                    Class::Set { negated, ranges }
                }
                '(' | ')' | '|' => {
                    return err(format!(
                        "'{c}' (groups and alternatives) is not supported in patterns; use enumeration for alternatives"
                    ));
                }
                '*' | '+' | '?' | '{' => {
                    return err(format!("'{c}' must follow a character or class"));
                }
                '^' | '$' => {
                    return err(format!(
                        "'{c}' is only allowed at the start ('^') or end ('$')"
                    ));
                }
                c => Class::Char(c),
            };
            let (min, max) = match chars.get(i) {
                Some('?') => (0, 1),
                Some('*') => (0, MAX_REPEAT),
                Some('+') => (1, MAX_REPEAT),
                Some('{') => {
                    let close = chars[i..].iter().position(|&c| c == '}').map(|p| p + i);
                    let Some(close) = close else {
                        return err("a '{' is not closed with '}'");
                    };
                    let inner: String = chars[i + 1..close].iter().collect();
                    let parse = |s: &str| {
                        s.trim().parse::<usize>().map_err(|_| {
                            PatternError(format!(
                                "'{{{inner}}}' is not a repeat count like {{2}} or {{1,3}}"
                            ))
                        })
                    };
                    let (min, max) = match inner.split_once(',') {
                        None => {
                            let n = parse(&inner)?;
                            (n, n)
                        }
                        Some((a, "")) => (parse(a)?, MAX_REPEAT),
                        Some((a, b)) => (parse(a)?, parse(b)?),
                    };
                    if min > max || max > MAX_REPEAT {
                        return err(format!(
                            "'{{{inner}}}': counts are 0 to {MAX_REPEAT}, the first not above the second"
                        ));
                    }
                    i = close;
                    (min, max)
                }
                _ => {
                    items.push(Item {
                        class,
                        min: 1,
                        max: 1,
                    });
                    continue;
                }
            };
            i += 1;
            items.push(Item { class, min, max });
        }
        Ok(Self { items, start, end })
    }

    // `p` indexes both `reach` and `next`, and `q` walks on from it.
    #[allow(clippy::needless_range_loop)]
    pub fn matches(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        let n = chars.len();
        // reach[p]: the items so far can end at position p.
        let mut reach = vec![false; n + 1];
        if self.start {
            reach[0] = true;
        } else {
            reach.iter_mut().for_each(|r| *r = true);
        }
        for item in &self.items {
            let mut next = vec![false; n + 1];
            for p in 0..=n {
                if !reach[p] {
                    continue;
                }
                let mut q = p;
                let mut count = 0;
                loop {
                    if count >= item.min {
                        next[q] = true;
                    }
                    if count == item.max || q == n || !item.class.accepts(chars[q]) {
                        break;
                    }
                    q += 1;
                    count += 1;
                }
            }
            reach = next;
        }
        if self.end {
            reach[n]
        } else {
            reach.iter().any(|&r| r)
        }
    }
}

fn unreachable_any() -> Result<char, PatternError> {
    err("'.' has no meaning inside a class")
}

impl Class {
    fn accepts(&self, c: char) -> bool {
        match self {
            Self::Any => c != '\n',
            Self::Char(x) => *x == c,
            Self::Set { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, s: &str) -> bool {
        Pattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn the_subset_matches_like_a_regex() {
        assert!(m("^[A-Z]{2}-\\d{3}$", "AB-123"));
        assert!(!m("^[A-Z]{2}-\\d{3}$", "AB-1234"));
        assert!(m("b+c", "aabbbcd"));
        assert!(!m("^b+c", "aabbbcd"));
        assert!(m("^a*a*a*a*a*a*a*a*b$", &format!("{}b", "a".repeat(500))));
        assert!(!m("^a*a*a*a*a*a*a*a*b$", &"a".repeat(500)));
        assert!(m("^[^ ]+$", "nospace"));
        assert!(!m("^[^ ]+$", "a space"));
        assert!(Pattern::parse("(a|b)").is_err());
        assert!(Pattern::parse("a{3,1}").is_err());
    }
}
