//! What a commit answers, and the cluster as a session sees it.

use kv::Version;
use replication::DcId;

/// What the protocol answered for one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitReply {
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
    /// The last round trip measured to it, emulated delay and queueing included.
    pub rtt_ms: Option<f64>,
    /// Its clock minus this node's, as the last probe measured it.
    pub clock_offset_ms: Option<f64>,
}
