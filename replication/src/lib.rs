//! # replication — the cross-data-center commit protocol
//!
//! Everything that decides whether a transaction commits across data centers lives here
//! (docs/protocol.md; §11 maps each section of the design to its file). Every core is a
//! deterministic state machine — messages and ticks in; messages, state to persist and
//! outcomes out — with no IO, clock, thread or unseeded randomness inside, so the model
//! checkers (`tests/instance_model.rs`, `tests/check_model.rs`), the golden scripts (`tests/golden.rs`), the simulator
//! (`meridian sim`) and the node runtime drive the same code.
//!
//! Where to read, top down:
//! * [`participant`] — one DC's side of the protocol, split by role: the origin ships a
//!   [`Record`] with its own vote, every voter checks it ([`check`]) and votes, every
//!   acceptor accepts votes, every learner decides, and any DC recovers an attempt whose
//!   outcome it has not learned.
//! * [`instance`] — the per-(attempt, voting DC) Paxos vote instances, the recovery
//!   ballots, the two learning rules and the commit rule ([`decide`]).
//! * [`record`] (what is committed: [`TxnKey`], [`ReadSpan`], [`Record`], [`Outcome`]),
//!   [`msg`] (what crosses the WAN: [`Msg`], [`Envelope`]), [`durable`] (what survives a
//!   crash), [`clock`] (the DCs' hybrid clock), [`complete`] (vote floors and the complete
//!   point A_d).
//!
//! The layers around it: `txn` executes transactions at their origin (locks,
//! snapshots, the manager) and hands commits to a participant through its driver; the
//! node runtime (`src/cluster`) carries envelopes between DCs over gRPC.
//!
//! Not built yet: fencing of a dead voter, range catch-up, read-only checks, garbage
//! collection of decided attempts, quorum leases (docs/protocol.md §11).

pub mod check;
pub mod clock;
pub mod complete;
pub mod durable;
pub mod instance;
pub mod msg;
pub mod participant;
pub mod record;

pub use clock::{DcClock, ShowVersion};
pub use complete::Closed;
pub use durable::{Durable, DurableEntry, RejoinFacts};
pub use instance::{
    decide, quorum, Acceptor, Ballot, DcId, LearnRule, Learner, Recovery, Rejected, Vote,
};
pub use msg::{Envelope, Msg};
pub use participant::{ClientResult, Config, Gauges, Output, Participant, Reply};
pub use record::{Outcome, ReadEntry, ReadSpan, Record, TxnId, TxnKey, Writes};
