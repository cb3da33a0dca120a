//! # txn — transactions for Meridian's SQL layer
//!
//! The interface the SQL layer uses (`begin`, `get`, `scan`, `get_for_update`, `put`,
//! `commit`, `rollback`) and what executes it at the transaction's origin: strict
//! two-phase locking for writes with **wound-wait** deadlock prevention ([`locks`]),
//! snapshot reads at the data center's complete point, and the [`manager`] that runs
//! transactions and hands each commit — its reads with the versions they observed, and
//! its writes — to the commit protocol through the [`driver`].
//!
//! There is one commit path whatever the number of data centers: the protocol lives in
//! the `replication` crate (docs/protocol.md), and the driver steps this DC's
//! participant and makes its state durable. With one data center the participant
//! decides each commit in the step that takes it, so a commit costs one group-committed
//! sync; with several it talks to its peers through the node runtime's transport.
//!
//! Layering: `txn` sits on `kv` (the versioned store with group commit) and
//! `replication` (the protocol's deterministic cores), and knows nothing of SQL.
//!
//! Invariants:
//! * a write is acknowledged only after it is durable (group-committed with fdatasync);
//! * every acknowledged commit is visible to every transaction that begins fresh after it
//!   (with one DC, every transaction begins fresh);
//! * commit versions are above everything their transaction read or overwrote
//!   (checked by the protocol, docs/protocol.md §5.1).
//!
//! Caveats: see [`manager`] (no MVCC garbage collection yet).

pub mod clock;
pub mod commit;
pub mod driver;
pub mod error;
pub mod locks;
pub mod manager;

pub use clock::{PhysicalClock, SystemClock};
pub use commit::{CommitReply, CommitTrace, DcStatus};
pub use driver::{ClusterView, DriverHandle, DriverTask, GcSettings, Peers, Transport};
pub use error::{Error, Result};
pub use locks::{LockMode, TxnId};
pub use manager::{ScanChunk, Txn, TxnManager, TxnStats, WRITE_SET_BYTES_MAX};
