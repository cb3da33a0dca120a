//! # txn — transactions for Meridian's SQL layer
//!
//! The interface the SQL layer uses (`begin`, `get`, `scan`, `get_for_update`, `put`,
//! `commit`, `rollback`) and the transaction manager behind it: strict two-phase locking
//! for writes with **wound-wait** deadlock prevention ([`locks`]), snapshot reads validated
//! at commit ([`validation`]), and the commit decision shaped as the cross-data-center
//! protocol's single-DC case ([`commit`]): a commit record, a vote per data center, COMMIT
//! iff a majority votes COMMIT.
//!
//! Layering: `txn` sits on `kv` (the versioned store with group commit) and knows nothing
//! of SQL. The pure cores (`locks`, `validation`, `commit`, `clock`) take inputs and return
//! decisions; only [`manager`] holds a mutex and awaits durability.
//!
//! Invariants:
//! * a write is acknowledged only after it is durable (group-committed with fdatasync);
//! * commit versions strictly increase, and each is above every version its transaction
//!   read or overwrote (the Consus begin-timestamp bug cannot happen);
//! * every acknowledged commit is visible to every transaction that begins after it.
//!
//! Several data centers: the manager hands commits to the cross-DC protocol through a
//! [`Replicator`] ([`replicated`]), which a node runtime implements over
//! [`participant`].
//!
//! Caveats: see [`manager`] (no MVCC garbage collection yet).

pub mod clock;
pub mod commit;
pub mod error;
pub mod locks;
pub mod manager;
pub mod participant;
pub mod replicated;
pub mod validation;

pub use clock::{DcClock, HybridClock, PhysicalClock, SystemClock};
pub use error::{Error, Result};
pub use locks::{LockMode, TxnId};
pub use manager::{ScanChunk, Txn, TxnManager, TxnStats, WRITE_SET_BYTES_MAX};
pub use replicated::{CommitTrace, Committed, DcStatus, Replicator};
