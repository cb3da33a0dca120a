//! The seam between the transaction manager and the cross-DC commit protocol.
//!
//! With one data center the manager decides commits itself ([`crate::commit`]). With
//! several, a node runtime drives the DC's [`crate::participant::Participant`] and
//! offers it to the manager as a [`Replicator`]: the manager still executes transactions
//! under wound-wait at their origin, and hands each commit — its reads with the versions
//! they observed, and its writes — to the protocol (docs/protocol.md §3). Committed
//! writes of every DC come back through [`crate::TxnManager::applied`].
//!
//! Snapshots: a transaction reads at the DC's complete point A_d, below which every
//! committed transaction is applied here (§7.6). A *fresh* transaction first waits until
//! A_d passes a version above every commit acknowledged anywhere before it began, so it
//! sees them all (strict serializability without validation for read-only work).

use kv::Version;
use replication::DcId;
use tokio::sync::oneshot;

use crate::locks::TxnId;
use crate::participant::{ReadEntry, Writes};

/// What the protocol answered for one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Committed at `version`, applied here, commit wait passed.
    At {
        version: Version,
        trace: CommitTrace,
    },
    /// Decided ABORT (SQLSTATE 40001: retry).
    Aborted { reason: String },
}

/// Where a commit's time went, for the session's `meridian.commit_trace` notice and
/// the node's latency log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitTrace {
    /// WAN delays on the causal chain the outcome depended on (docs/protocol.md §8).
    pub wan_delays: u32,
    /// Waiting for the protocol driver to take the commit, µs.
    pub queued_us: u64,
    /// From the driver taking the commit to the outcome: validation, votes, syncs and
    /// commit wait, µs.
    pub protocol_us: u64,
}

/// One data center as this node sees it (`SHOW DATA CENTERS`).
#[derive(Debug, Clone, PartialEq)]
pub struct DcStatus {
    pub id: DcId,
    pub name: String,
    pub sql_addr: String,
    pub peer_addr: String,
    /// The DC of this node.
    pub local: bool,
    /// `local`, `up` (heard from recently), `unreachable`, or `cut` (by WAN emulation).
    pub state: &'static str,
    /// The emulated one-way delay, jitter and loss from this DC to it.
    pub delay_ms: u64,
    pub jitter_ms: u64,
    pub loss: f64,
    /// Milliseconds since a message from it arrived (None: never, or local).
    pub last_heard_ms: Option<u64>,
}

/// The cross-DC commit path, as the transaction manager sees it.
pub trait Replicator: Send + Sync + 'static {
    /// This data center.
    fn dc(&self) -> DcId;
    /// Every DC of the cluster, this one included.
    fn data_centers(&self) -> Vec<DcStatus>;
    /// A_d now.
    fn complete(&self) -> Version;
    /// A version above every commit acknowledged anywhere so far (the DC's hybrid clock
    /// now plus the clock bound ε).
    fn fresh_point(&self) -> Version;
    /// Resolves once A_d ≥ `version`; dropped (an error) if the node stops.
    fn wait_complete(&self, version: Version) -> oneshot::Receiver<()>;
    /// Commits through the protocol. Dropped (an error) if the node stops first: the
    /// outcome is then unknown to the caller.
    fn commit(
        &self,
        txn: TxnId,
        reads: Vec<ReadEntry>,
        writes: Writes,
    ) -> oneshot::Receiver<Committed>;
}
