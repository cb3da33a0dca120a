//! kv — Meridian's node-local storage: an ordered byte engine, multi-version rows on top
//! of it, the shard map, and group commit.
//!
//! ```text
//!   Store (store.rs) ── commit(version, writes) ──▶ GroupCommitter ──▶ Engine::write(sync)
//!     │                                              (one fdatasync per group)
//!     ├─ MvccStore ── get/latest/scan at a version ─▶ Engine::scan
//!     └─ ShardMap  ── user key ─▶ shard
//!   Engine = MemoryEngine (tests, simulator, crash) | RocksEngine (disk)
//! ```
//!
//! Layers, bottom-up: [`keycode`] (order-preserving encoding and the keyspace map) →
//! [`keys`] (the raw key enum) → [`engine`] (trait) with [`memory`] and [`rocks`] →
//! [`mvcc`] → [`shard`], [`committer`] → [`Store`].
//!
//! Invariants:
//! - Every raw key is built by [`keys::Key`]; the families are listed in [`keycode`].
//! - Version 0 means "nothing" and is never written; reads at `at` see versions `<= at`.
//! - A commit is acknowledged only after a synced engine write covering it.
//! - The shard map tiles the whole user keyspace.
//!
//! Caveats:
//! - No MVCC garbage collection, no shard splits yet.
//! - This crate does not order or validate transactions: the `txn` layer decides versions
//!   and conflicts, and submits commits in version order.
//! - A failed sync poisons the committer (see [`committer`]): the node must restart.

pub mod committer;
pub mod engine;
pub mod error;
pub mod keycode;
pub mod keys;
pub mod memory;
pub mod mvcc;
pub mod rocks;
pub mod shard;
pub mod store;

pub use committer::{CommitterStats, GroupCommitter};
pub use engine::{Engine, ExportSink, WriteBatch};
pub use error::{Error, Result};
pub use memory::MemoryEngine;
pub use mvcc::gc::{GcCursor, GcPass};
pub use mvcc::{MvccStore, Versioned};
pub use rocks::{RocksEngine, RocksOptions};
pub use shard::{ShardDescriptor, ShardMap};
pub use store::Store;

/// A commit version; 0 = "nothing".
pub type Version = u64;
