//! # replication — consensus among data centers
//!
//! The Paxos-family machinery of the cross-data-center protocol (docs/protocol.md, BRIEF
//! §3–§4). Built so far: [`instance`], the per-(attempt, voting DC) vote instances whose
//! acceptors are the data centers, the recovery ballots that let any data center finish
//! an attempt, the two learning rules and the commit rule (`decide`), model-checked
//! exhaustively in `tests/model.rs`. To come: the participant state machine that drives
//! them per transaction, fencing, catch-up, Multi-Paxos inside a data center, and quorum
//! leases for local consistent reads.
//!
//! Invariant: every core here is a deterministic state machine — messages and ticks in;
//! messages, state to persist and outcomes out — with no IO, clock, thread or unseeded
//! randomness inside, so the model checker, the simulator and the node runtime drive the
//! same code.
//!
//! Today the single-data-center node does not use it: `txn::commit::decide` with one
//! vote is the whole decision.

pub mod instance;
pub use instance::{
    decide, quorum, Acceptor, Ballot, DcId, LearnRule, Learner, Recovery, Rejected, Vote,
};
