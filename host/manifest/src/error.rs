use std::fmt;
use std::path::{Path, PathBuf};

/// Everything wrong with a manifest, each problem pointing at its key and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    file: Option<PathBuf>,
    problems: Vec<Problem>,
}

/// One problem in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key, for example `routes[1].permission`; empty for the whole file.
    pub key: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            line: None,
            column: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn at(mut self, text: &str, offset: Option<usize>) -> Self {
        if let Some(offset) = offset {
            let (line, column) = line_column(text, offset);
            self.line = Some(line);
            self.column = Some(column);
        }
        self
    }
}

impl ManifestError {
    pub(crate) fn new(problems: Vec<Problem>) -> Self {
        Self {
            file: None,
            problems,
        }
    }

    pub(crate) fn single(problem: Problem) -> Self {
        Self::new(vec![problem])
    }

    /// Names the file the manifest came from in the message.
    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_path_buf());
        self
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| crate::MANIFEST_FILE.to_string());
        let n = self.problems.len();
        write!(
            f,
            "{file} has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - ")?;
            if let Some(line) = p.line {
                write!(f, "line {line}")?;
                if let Some(col) = p.column {
                    write!(f, ":{col}")?;
                }
                write!(f, ", ")?;
            }
            if !p.key.is_empty() {
                write!(f, "`{}`: ", p.key)?;
            }
            write!(f, "{}", p.message)?;
            if let Some(hint) = &p.hint {
                write!(f, "\n    hint: {hint}")?;
            }
        }
        Ok(())
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(super::line_column(text, 0), (1, 1));
        assert_eq!(super::line_column(text, 6), (2, 1));
        assert_eq!(super::line_column(text, 8), (2, 3));
    }
}
