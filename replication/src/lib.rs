//! # replication — consensus among data centers (not built yet)
//!
//! This crate will hold the Paxos-family machinery of the cross-data-center protocol
//! (docs/protocol.md, BRIEF §3–§4): the per-transaction vote instances whose acceptors
//! are the data centers, recovery ballots that let any data center finish a transaction,
//! Multi-Paxos inside a data center, and quorum leases for local consistent reads.
//!
//! Invariant it will keep: every core here is a deterministic state machine — messages and
//! ticks in; messages, state to persist and outcomes out — with no IO, clock, thread or
//! unseeded randomness inside, so the simulator and the node runtime drive the same code.
//!
//! Today the single-data-center node needs none of it: `txn::commit::decide` with one
//! vote is the whole decision. The crate exists so the layering (`txn` above
//! `replication` above `kv`) is fixed from the start.
