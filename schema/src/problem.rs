//! `Problem`: one thing wrong with a funko, located as precisely as we can.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One user-facing error about a funko: the file, where in it, which field, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct Problem {
    /// The file (or folder) the problem is in.
    pub file: PathBuf,
    /// 1-based line, when the problem is inside a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based column, when the problem is inside a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// The dotted path of the field at fault, such as `healthcheck.interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong and, where we know, how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem with a whole file or folder, with no position inside it.
    pub fn whole(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}
