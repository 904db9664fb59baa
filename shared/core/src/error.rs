use relaychat_schema::SchemaError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a record (or a port call) failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The record itself is wrong: it will fail the same way every time. Dead-letter it.
    #[error(transparent)]
    Invalid(#[from] SchemaError),

    /// A dependency refused this for good (validation, missing permission, bad request).
    #[error("{operation} was rejected")]
    Rejected {
        operation: &'static str,
        #[source]
        source: BoxError,
    },

    /// A dependency is throttling, timing out or down: retry later, in order.
    #[error("{operation} is unavailable (retryable)")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

impl Error {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    pub fn rejected(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Rejected {
            operation,
            source: source.into(),
        }
    }

    pub fn unavailable(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            operation,
            source: source.into(),
        }
    }

    /// The whole chain as one line, for logs and dead-letter reasons. A source whose text the
    /// line already holds (errors that print their cause) is not repeated.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// An error and every source under it, on one line (a source already said is not repeated).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
