//! # planner — from SQL statements to transactions
//!
//! The planner turns parsed SQL statements into reads and writes of one transaction:
//!
//! * [`catalog`]: schemas stored in the KV store and changed transactionally;
//! * [`types`]: SQL types and values ([`types::Datum`]), their PostgreSQL text/binary forms,
//!   their row and order-preserving key encodings and their Arrow forms;
//! * [`table`]: rows and secondary-index entries, kept consistent by every write;
//! * [`provider`] + [`context`]: DataFusion reads tables through the session's transaction;
//! * [`exec`]: statement execution — DataFusion plans and runs queries; DML and DDL are
//!   planned by our own code (DataFusion's DML loses data with IN/EXISTS subqueries,
//!   apache/datafusion#24654); point statements by primary key skip DataFusion entirely;
//! * [`arith`] and [`subquery`]: rewrites of DataFusion's optimized plans where its
//!   semantics differ from PostgreSQL's (integer overflow, per-row subplans).
//!
//! Layering: `planner` uses `txn` (transactions) and `kv` (key encoding); it knows nothing
//! of the wire protocol. Errors carry their SQLSTATE ([`error::Error`]).
//!
//! Caveats: one schema (`public`); no foreign keys; sequences are node-local blocks.

pub mod arith;
pub mod catalog;
pub mod context;
pub mod error;
pub mod exec;
pub mod functions;
pub mod numeric_scale;
pub mod provider;
pub mod sequence;
pub mod subquery;
pub mod table;
pub mod types;

pub use error::{Error, Result};
pub use exec::{Output, OutputColumn, Planner, Prepared, RowStream};
