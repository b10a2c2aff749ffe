//! Errors of the store: what went wrong with a request against the data, in words a person
//! can act on. The API layer maps each to an HTTP status.

use crate::model::{FieldError, LessonTransitionError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing named does not exist (or the caller may not know it exists).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken: an email, an enrollment.
    #[error("{message}")]
    Duplicate { code: &'static str, message: String },
    /// A field failed validation.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The request is valid but the current state forbids it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A lesson event the lesson's state does not allow.
    #[error(transparent)]
    LessonState(#[from] LessonTransitionError),
    /// A file the data belongs with could not be stored; details go to the log.
    #[error("storage error: {0}")]
    Storage(std::io::Error),
    /// The database failed; details go to the log, not to the client.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub fn duplicate(code: &'static str, message: impl Into<String>) -> Self {
        StoreError::Duplicate {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        StoreError::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// Whether a database error is a unique-constraint violation (both backends).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

pub type StoreResult<T> = Result<T, StoreError>;
