//! The transaction layer's one error type.

use thiserror::Error;

/// Errors of the transaction layer. `is_retryable` says whether the client should retry the
/// whole transaction (SQLSTATE 40001 in the SQL layer).
#[derive(Debug, Error)]
pub enum Error {
    #[error("storage: {0}")]
    Storage(#[from] kv::Error),
    /// An older transaction needed a lock this one held (wound-wait).
    #[error(
        "could not serialize access: transaction was wounded by an older conflicting transaction"
    )]
    Wounded,
    /// Commit-time validation found a read made stale by a concurrent commit.
    #[error("could not serialize access due to read/write dependencies among transactions")]
    Conflict,
    /// The transaction was already aborted (wounded, failed or rolled back).
    #[error("transaction is aborted")]
    Aborted,
    /// The node stopped before the commit protocol answered: the outcome is unknown.
    #[error("the node stopped before the commit outcome was known")]
    OutcomeUnknown,
    /// This node's clock is provably further from a peer's than the bound commit wait
    /// assumes: it coordinates no commit until that is over (the reason says why).
    #[error("{0}")]
    ClockOffset(String),
    /// Rebuilding this DC from a peer (state transfer) cannot go on; the reason says why.
    #[error("rebuild: {0}")]
    Rejoin(String),
    /// The transaction's buffered writes exceed the per-transaction memory bound.
    #[error("transaction write set exceeds {limit_bytes} bytes")]
    WriteSetTooLarge { limit_bytes: usize },
}

impl Error {
    /// Whether retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Wounded | Error::Conflict)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
