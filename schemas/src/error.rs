//! Errors found in a topology document: where (file, line, column, field path) and what.
//!
//! Every parse and validation function of this crate reports problems as [`SpecErrors`],
//! a non-empty list of [`SpecError`]s, so a user sees every mistake of a document at once
//! instead of fixing them one run at a time.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem in a topology document.
///
/// `Display` renders `file:line:column: path: message`, leaving out the parts that are
/// absent, e.g. `wordcount.yaml:7:9: spec.operators[1].instances: invalid value ...` or
/// `wordcount.yaml: spec.operators[2].inputs[0].from: operator "x" does not exist`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecError {
    /// The file (or other origin such as `<stdin>` or a request) the document came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line of the offending text, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column of the offending text, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Field path inside the document, e.g. `spec.operators[2].inputs[0].from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong, and where useful what would be right.
    pub message: String,
}

impl SpecError {
    /// An error with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            column: None,
            path: None,
            message: message.into(),
        }
    }

    /// An error about the field at `path`.
    pub fn at_path(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::new(message)
        }
    }

    /// Sets the file.
    #[must_use]
    pub fn with_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Sets line and column (both 1-based).
    #[must_use]
    pub fn with_location(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Sets the field path.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut location = Vec::with_capacity(3);
        if let Some(file) = &self.file {
            location.push(file.clone());
        }
        if let Some(line) = self.line {
            location.push(line.to_string());
            if let Some(column) = self.column {
                location.push(column.to_string());
            }
        }
        if !location.is_empty() {
            write!(f, "{}: ", location.join(":"))?;
        }
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

/// All problems found in one input, in document order. Never empty when returned as an
/// error by this crate. `Display` writes one error per line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    /// A list holding a single error.
    pub fn single(error: SpecError) -> Self {
        Self(vec![error])
    }

    /// True when there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The errors, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, SpecError> {
        self.0.iter()
    }

    /// Adds one error.
    pub fn push(&mut self, error: SpecError) {
        self.0.push(error);
    }

    /// Appends all errors of `other`.
    pub fn extend(&mut self, other: SpecErrors) {
        self.0.extend(other.0);
    }

    /// Sets `file` on every error that has none.
    #[must_use]
    pub fn with_file(mut self, file: &str) -> Self {
        for error in &mut self.0 {
            if error.file.is_none() {
                error.file = Some(file.to_owned());
            }
        }
        self
    }

    /// `Ok(())` when empty, `Err(self)` otherwise.
    pub fn into_result(self) -> Result<(), SpecErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl From<SpecError> for SpecErrors {
    fn from(error: SpecError) -> Self {
        Self::single(error)
    }
}

impl From<Vec<SpecError>> for SpecErrors {
    fn from(errors: Vec<SpecError>) -> Self {
        Self(errors)
    }
}

impl IntoIterator for SpecErrors {
    type Item = SpecError;
    type IntoIter = std::vec::IntoIter<SpecError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a SpecErrors {
    type Item = &'a SpecError;
    type IntoIter = std::slice::Iter<'a, SpecError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_every_part() {
        let e = SpecError::at_path("spec.operators[2].inputs[0].from", "no such operator")
            .with_file("a.yaml")
            .with_location(7, 9);
        assert_eq!(
            e.to_string(),
            "a.yaml:7:9: spec.operators[2].inputs[0].from: no such operator"
        );
    }

    #[test]
    fn display_omits_absent_parts() {
        assert_eq!(SpecError::new("boom").to_string(), "boom");
        assert_eq!(SpecError::new("boom").with_file("f").to_string(), "f: boom");
        assert_eq!(
            SpecError::at_path("metadata.name", "bad").to_string(),
            "metadata.name: bad"
        );
        let mut e = SpecError::new("x").with_file("f");
        e.line = Some(3);
        assert_eq!(e.to_string(), "f:3: x");
    }

    #[test]
    fn errors_display_one_per_line_and_serialize_camel_case() {
        let errors = SpecErrors(vec![
            SpecError::new("a").with_file("f"),
            SpecError::at_path("p", "b"),
        ]);
        assert_eq!(errors.to_string(), "f: a\np: b");
        let json = serde_json::to_value(&errors).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!([{"file": "f", "message": "a"}, {"path": "p", "message": "b"}])
        );
        let back: SpecErrors = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, errors);
    }

    #[test]
    fn with_file_keeps_existing_files() {
        let errors = SpecErrors(vec![
            SpecError::new("a").with_file("x"),
            SpecError::new("b"),
        ])
        .with_file("y");
        assert_eq!(errors.0[0].file.as_deref(), Some("x"));
        assert_eq!(errors.0[1].file.as_deref(), Some("y"));
    }
}
