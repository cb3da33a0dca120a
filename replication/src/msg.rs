//! The messages between data centers (docs/protocol.md §4) and the envelope that
//! carries them.

use serde::{Deserialize, Serialize};

use crate::complete::Closed;
use crate::instance::{Ballot, DcId, Vote};
use crate::record::{Outcome, Record, TxnKey};

/// The protocol's messages (§4; fencing, catch-up ranges and read-only checks are not
/// built yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// The origin ships its record (its own `Vote2a` travels alongside).
    Record { record: Record },
    /// The owner of `ballot` proposes `vote` for instance (txn, voter).
    Vote2a {
        txn: TxnKey,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
    },
    /// The sender accepted `vote` at `ballot` for instance (txn, voter).
    Accepted2b {
        txn: TxnKey,
        voter: DcId,
        ballot: Ballot,
        vote: Vote,
    },
    /// The sender has promised `promised` for instance (txn, voter).
    Reject {
        txn: TxnKey,
        voter: DcId,
        promised: Ballot,
    },
    /// Recovery Phase 1 for the listed instances of `txn`.
    Prepare1a {
        txn: TxnKey,
        ballot: Ballot,
        voters: Vec<DcId>,
    },
    /// The sender promised `ballot`; what it had accepted per voter; its record if any.
    Promise1b {
        txn: TxnKey,
        ballot: Ballot,
        accepted: Vec<(DcId, Option<(Ballot, Vote)>)>,
        record: Option<Record>,
    },
    /// The outcome, with the record when committed (so no learner lacks it).
    Decision {
        txn: TxnKey,
        outcome: Outcome,
        record: Option<Record>,
    },
    /// The sender knows `txn`'s outcome: stop retransmitting it there.
    DecisionAck { txn: TxnKey },
    /// The sender learned `txn` committed but lacks its record.
    FetchRecord { txn: TxnKey },
    /// The sender's vote floor (§7.6), sent periodically; about no single attempt.
    Closed(Closed),
}

impl Msg {
    /// The attempt the message is about (none for `Closed`).
    pub fn txn(&self) -> Option<TxnKey> {
        Some(match self {
            Msg::Record { record } => record.key,
            Msg::Vote2a { txn, .. }
            | Msg::Accepted2b { txn, .. }
            | Msg::Reject { txn, .. }
            | Msg::Prepare1a { txn, .. }
            | Msg::Promise1b { txn, .. }
            | Msg::Decision { txn, .. }
            | Msg::DecisionAck { txn }
            | Msg::FetchRecord { txn } => *txn,
            Msg::Closed(_) => return None,
        })
    }
}

/// A message between data centers. `depth` is the length of the longest chain of
/// inter-DC messages about this attempt that the sender's knowledge depends on, plus
/// one: the WAN delays an outcome took are counted along causality (§11.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: DcId,
    pub to: DcId,
    pub depth: u32,
    pub msg: Msg,
}
