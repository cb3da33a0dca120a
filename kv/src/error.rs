//! The crate's one error type.
//!
//! Every failure of the storage layer is a [`Error`]. Errors carry strings rather than
//! source errors so that they are `Clone`: the group committer answers every waiter of a
//! failed sync with the same error.
//!
//! Classification:
//! - [`Error::is_retryable`] is true only for transient engine conditions (`Busy`): the same
//!   request may succeed if simply issued again.
//! - `Io` and `Corruption` are local node faults. They are never deterministic across
//!   replicas, so a replica must not treat them as a verdict on the request itself.

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;

/// A storage-layer failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The engine failed to read or write (disk error, failed fsync, ...).
    #[error("storage I/O error: {0}")]
    Io(String),
    /// Stored bytes do not decode, or persisted state breaks an invariant.
    #[error("storage corruption: {0}")]
    Corruption(String),
    /// The engine is temporarily unable to serve the request (busy, try again, timed out).
    #[error("storage busy: {0}")]
    Busy(String),
    /// The store or its committer has shut down, or a previous sync failed and the
    /// committer refuses further writes.
    #[error("storage closed")]
    Closed,
}

impl Error {
    /// Whether issuing the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Busy(_))
    }
}

impl From<rocksdb::Error> for Error {
    fn from(err: rocksdb::Error) -> Self {
        use rocksdb::ErrorKind;
        match err.kind() {
            ErrorKind::Corruption => Error::Corruption(err.into_string()),
            ErrorKind::Busy | ErrorKind::TryAgain | ErrorKind::TimedOut | ErrorKind::Incomplete => {
                Error::Busy(err.into_string())
            }
            ErrorKind::ShutdownInProgress => Error::Closed,
            _ => Error::Io(err.into_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Corruption(format!("json: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_busy_is_retryable() {
        assert!(Error::Busy("x".into()).is_retryable());
        assert!(!Error::Io("x".into()).is_retryable());
        assert!(!Error::Corruption("x".into()).is_retryable());
        assert!(!Error::Closed.is_retryable());
    }
}
