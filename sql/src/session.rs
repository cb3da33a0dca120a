//! One client session: transaction state, settings, and statement dispatch.
//!
//! ```text
//!            BEGIN                      error
//!   Idle ───────────▶ InBlock ─────────────────▶ Failed
//!    ▲  ◀── COMMIT/ROLLBACK ──┘                    │
//!    └───────────────── ROLLBACK / COMMIT ─────────┘   (COMMIT of a failed block = ROLLBACK)
//! ```
//!
//! Outside a block every statement runs in its own transaction (autocommit). A statement
//! that fails inside a block fails the block: every later statement gets 25P02 until
//! ROLLBACK. An autocommit write statement whose transaction is aborted by wound-wait or
//! validation (40001) is retried here, up to [`AUTOCOMMIT_RETRIES_MAX`] times, because no
//! result has reached the client yet; statements inside a block are never retried (the
//! client must retry the whole transaction).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, Set, Statement, TransactionMode, Value, ValueWithSpan,
};
use planner::error::sqlstate;
use planner::exec::copy::CopyIn;
use planner::types::Datum;
use planner::{Error, Output, OutputColumn, Planner, Prepared, Result, RowStream};
use txn::Txn;

use crate::cluster;

/// Autocommit retries of a statement aborted by a concurrent transaction.
pub const AUTOCOMMIT_RETRIES_MAX: usize = 8;

/// What a statement produced, for the protocol layer.
pub enum Reply {
    Rows {
        columns: Vec<OutputColumn>,
        rows: RowStream,
        tag: String,
    },
    Command(String),
    /// Transaction-control tags change the ReadyForQuery status.
    Begin(String),
    End(String),
    /// A statement answered with a notice (e.g. BEGIN inside a block).
    Notice {
        tag: String,
        severity: &'static str,
        code: &'static str,
        message: String,
    },
}

/// The session's transaction status for ReadyForQuery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Idle,
    InBlock,
    Failed,
}

pub struct Session {
    engine: Arc<Planner>,
    txn: Option<Arc<Txn>>,
    failed: bool,
    settings: BTreeMap<String, String>,
    copy: Option<CopyState>,
}

/// The error of every statement in a failed transaction block until it ends.
fn block_aborted() -> Error {
    Error::new(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// An open `COPY … FROM STDIN`: its transaction (its own under autocommit) and the first
/// error, after which the rest of the data is discarded until CopyDone.
struct CopyState {
    txn: Arc<Txn>,
    autocommit: bool,
    copy: Option<CopyIn>,
    error: Option<Error>,
}

/// Session settings SHOW knows, with PostgreSQL's defaults.
fn default_settings() -> BTreeMap<String, String> {
    [
        ("server_version", crate::SERVER_VERSION),
        ("server_version_num", crate::SERVER_VERSION_NUM),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("timezone", "UTC"),
        ("intervalstyle", "postgres"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("search_path", "\"$user\", public"),
        ("transaction_isolation", "serializable"),
        ("default_transaction_isolation", "serializable"),
        ("transaction_read_only", "off"),
        ("default_transaction_read_only", "off"),
        ("application_name", ""),
        ("extra_float_digits", "1"),
        ("statement_timeout", "0"),
        ("lock_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("max_identifier_length", "63"),
        ("is_superuser", "on"),
        ("bytea_output", "hex"),
        ("client_min_messages", "notice"),
        ("synchronous_commit", "on"),
        ("work_mem", "4MB"),
        (cluster::COMMIT_TRACE, "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Session {
    pub fn new(engine: Arc<Planner>) -> Session {
        Session {
            engine,
            txn: None,
            failed: false,
            settings: default_settings(),
            copy: None,
        }
    }

    /// Starts `COPY … FROM STDIN`; returns the number of columns per row.
    pub fn copy_start(&mut self, statement: &Statement) -> Result<usize> {
        if self.failed {
            return Err(block_aborted());
        }
        let (txn, autocommit) = match &self.txn {
            Some(txn) => (txn.clone(), false),
            None => (Arc::new(self.engine.txns.begin()), true),
        };
        match self.engine.copy_in(&txn, statement) {
            Ok(copy) => {
                let columns = copy.column_count();
                self.copy = Some(CopyState {
                    txn,
                    autocommit,
                    copy: Some(copy),
                    error: None,
                });
                Ok(columns)
            }
            Err(e) => {
                self.end_failed_copy(&txn, autocommit);
                Err(e)
            }
        }
    }

    /// Feeds COPY data; after an error the rest is discarded.
    pub async fn copy_data(&mut self, bytes: &[u8]) {
        let Some(state) = &mut self.copy else {
            return;
        };
        if state.error.is_some() {
            return;
        }
        if let Some(copy) = &mut state.copy {
            if let Err(e) = copy.data(&self.engine, &state.txn, bytes).await {
                state.error = Some(e);
            }
        }
    }

    /// CopyDone: the rows copied (committed under autocommit), or the COPY's error.
    pub async fn copy_done(&mut self) -> Result<u64> {
        let Some(mut state) = self.copy.take() else {
            return Err(Error::new(
                sqlstate::PROTOCOL_VIOLATION,
                "no COPY in progress",
            ));
        };
        let result = match (state.error.take(), state.copy.take()) {
            (Some(e), _) => Err(e),
            (None, Some(copy)) => copy.finish(&self.engine, &state.txn).await,
            (None, None) => Err(Error::internal("COPY state lost")),
        };
        match result {
            Ok(rows) if state.autocommit => match state.txn.commit().await {
                Ok(_) => Ok(rows),
                Err(e) => Err(Error::from(e)),
            },
            Ok(rows) => Ok(rows),
            Err(e) => {
                self.end_failed_copy(&state.txn, state.autocommit);
                Err(e)
            }
        }
    }

    /// CopyFail from the client: the COPY (and the block it ran in) fails.
    pub fn copy_fail(&mut self, message: &str) -> Error {
        if let Some(state) = self.copy.take() {
            self.end_failed_copy(&state.txn, state.autocommit);
        }
        Error::new("57014", format!("COPY from stdin failed: {message}"))
    }

    fn end_failed_copy(&mut self, txn: &Txn, autocommit: bool) {
        if autocommit {
            txn.rollback();
        } else {
            self.failed = true;
        }
    }

    pub fn engine(&self) -> &Arc<Planner> {
        &self.engine
    }

    pub fn status(&self) -> Status {
        match (&self.txn, self.failed) {
            (None, _) => Status::Idle,
            (Some(_), false) => Status::InBlock,
            (Some(_), true) => Status::Failed,
        }
    }

    /// Records that a statement failed: a block becomes failed.
    pub fn fail(&mut self) {
        if self.txn.is_some() {
            self.failed = true;
        }
    }

    /// Sets a startup parameter (client_encoding, application_name, …).
    pub fn set_startup(&mut self, name: &str, value: &str) {
        self.settings.insert(name.to_lowercase(), value.to_string());
    }

    /// Analyses a statement in the block's transaction, or in a new one. With several
    /// DCs a new one starts on the latest complete snapshot, and an analysis that fails
    /// there is repeated on a fresh snapshot (which holds every table created anywhere
    /// before), so no error comes from a stale view.
    pub async fn prepare(&self, statement: Statement) -> Result<Prepared> {
        if let Some(txn) = self.txn.as_ref().filter(|_| !self.failed) {
            return self.engine.prepare(txn, statement).await;
        }
        let txn = Arc::new(self.engine.txns.begin());
        match self.engine.prepare(&txn, statement.clone()).await {
            Err(_) if !txn.is_fresh() => {
                let txn = Arc::new(self.engine.txns.begin_fresh().await?);
                self.engine.prepare(&txn, statement).await
            }
            result => result,
        }
    }

    /// Runs one statement. `prepared` is its cached analysis, if any.
    pub async fn execute(
        &mut self,
        statement: &Statement,
        prepared: Option<&Prepared>,
        params: &[Datum],
    ) -> Result<Reply> {
        if let Some(reply) = self.control(statement).await? {
            return Ok(reply);
        }
        if self.failed {
            return Err(block_aborted());
        }
        if let Some(txn) = self.txn.clone() {
            if matches!(statement, Statement::Vacuum(_)) {
                self.failed = true;
                return Err(Error::new(
                    "25001",
                    "VACUUM cannot run inside a transaction block",
                ));
            }
            let result = self.run(&txn, statement, prepared, params).await;
            if result.is_err() {
                self.failed = true;
            }
            return result;
        }
        // Autocommit. With several DCs a query begins on a fresh snapshot (it waits for
        // the DC's complete point to pass every commit acknowledged so far); other
        // statements start on the latest complete snapshot and are validated at commit,
        // and one whose execution fails for another reason is run again on a fresh
        // snapshot, so no error is reported from a stale view. A failed commit is never
        // re-run that way: its outcome may be unknown (40003).
        let mut attempt = 0;
        let mut fresh = matches!(statement, Statement::Query(_));
        loop {
            let txn = Arc::new(if fresh {
                self.engine.txns.begin_fresh().await.map_err(Error::from)?
            } else {
                self.engine.txns.begin()
            });
            let started = Instant::now();
            let result = self.run(&txn, statement, prepared, params).await;
            let executed = result.is_ok();
            let execute = started.elapsed();
            let result = match result {
                // A query reads a snapshot and writes nothing: its providers hold the
                // transaction until the stream is done; nothing to commit.
                Ok(reply @ Reply::Rows { .. }) if matches!(&reply, Reply::Rows { tag, .. } if tag == "SELECT") => {
                    return Ok(reply)
                }
                Ok(reply) => {
                    let committing = Instant::now();
                    match txn.commit().await {
                        Ok(version) => {
                            Ok(self.traced(reply, &txn, version, Some(execute), committing))
                        }
                        Err(e) => Err(Error::from(e)),
                    }
                }
                Err(e) => {
                    txn.rollback();
                    Err(e)
                }
            };
            match result {
                Err(e) if e.is_retryable() && attempt < AUTOCOMMIT_RETRIES_MAX => {
                    attempt += 1;
                    tracing::debug!(attempt, "retrying autocommit statement after {e}");
                    continue;
                }
                Err(e) if !executed && !txn.is_fresh() => {
                    tracing::debug!("re-running on a fresh snapshot after {e}");
                    fresh = true;
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn run(
        &self,
        txn: &Arc<Txn>,
        statement: &Statement,
        prepared: Option<&Prepared>,
        params: &[Datum],
    ) -> Result<Reply> {
        let owned;
        let prepared = match prepared {
            Some(p) => p,
            None => {
                owned = self.engine.prepare(txn, statement.clone()).await?;
                &owned
            }
        };
        if params.len() < prepared.param_types.len() {
            return Err(Error::new(
                sqlstate::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {}",
                    params.len(),
                    prepared.param_types.len()
                ),
            ));
        }
        match self.engine.execute(txn, prepared, params).await? {
            // For RETURNING the rows are already computed and the tag counts them.
            Output::Rows { columns, rows, tag } => Ok(Reply::Rows { columns, rows, tag }),
            Output::Command(tag) => Ok(Reply::Command(tag)),
            Output::Notice { tag, message } => Ok(Reply::Notice {
                tag,
                severity: "NOTICE",
                code: "00000",
                message,
            }),
        }
    }

    /// With `meridian.commit_trace` on, a command's reply becomes a notice saying where
    /// its commit's time went (replies carrying rows are left alone).
    fn traced(
        &self,
        reply: Reply,
        txn: &Txn,
        version: Option<u64>,
        execute: Option<Duration>,
        commit_started: Instant,
    ) -> Reply {
        let on = self
            .settings
            .get(cluster::COMMIT_TRACE)
            .is_some_and(|v| v == "on");
        match reply {
            Reply::Command(tag) | Reply::End(tag) if on => Reply::Notice {
                tag,
                severity: "NOTICE",
                code: "00000",
                message: cluster::trace_notice(
                    version,
                    txn.commit_trace(),
                    execute,
                    commit_started.elapsed(),
                ),
            },
            other => other,
        }
    }

    /// Transaction control, SET and SHOW. None for other statements.
    async fn control(&mut self, statement: &Statement) -> Result<Option<Reply>> {
        Ok(Some(match statement {
            Statement::StartTransaction { modes, .. } => {
                check_modes(modes)?;
                if self.txn.is_some() {
                    warning(
                        "BEGIN",
                        "25001",
                        "there is already a transaction in progress",
                    )
                } else {
                    self.txn = Some(Arc::new(self.engine.txns.begin_fresh().await?));
                    self.failed = false;
                    Reply::Begin("BEGIN".into())
                }
            }
            Statement::Commit { .. } => match self.txn.take() {
                None => warning("COMMIT", "25P01", "there is no transaction in progress"),
                Some(txn) if self.failed => {
                    self.failed = false;
                    txn.rollback();
                    Reply::End("ROLLBACK".into())
                }
                Some(txn) => {
                    let started = Instant::now();
                    let version = txn.commit().await.map_err(Error::from)?;
                    self.traced(Reply::End("COMMIT".into()), &txn, version, None, started)
                }
            },
            Statement::Rollback {
                savepoint: None, ..
            } => match self.txn.take() {
                None => warning("ROLLBACK", "25P01", "there is no transaction in progress"),
                Some(txn) => {
                    self.failed = false;
                    txn.rollback();
                    Reply::End("ROLLBACK".into())
                }
            },
            Statement::Rollback {
                savepoint: Some(_), ..
            }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => return Err(Error::unsupported("savepoints")),
            Statement::Set(set) => {
                if self.failed {
                    return Ok(None);
                }
                self.set(set)?;
                Reply::Command("SET".into())
            }
            Statement::ShowVariable { variable } => {
                if self.failed {
                    return Ok(None);
                }
                let name = variable
                    .iter()
                    .map(|i| i.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                self.show(&name)?
            }
            Statement::Discard { .. } => Reply::Command("DISCARD ALL".into()),
            _ => return Ok(None),
        }))
    }

    fn set(&mut self, set: &Set) -> Result<()> {
        match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = object_name_text(variable);
                let value = values
                    .iter()
                    .map(setting_value)
                    .collect::<Vec<_>>()
                    .join(", ");
                self.set_variable(&name, &value)
            }
            Set::SetTimeZone { value, .. } => self.set_variable("timezone", &setting_value(value)),
            Set::SetNames { .. } | Set::SetNamesDefault {} => Ok(()),
            Set::SetTransaction { modes, .. } => check_modes(modes),
            Set::SetSessionParam(_) => Ok(()),
            other => Err(Error::unsupported(format!("SET {other}"))),
        }
    }

    fn set_variable(&mut self, name: &str, value: &str) -> Result<()> {
        let value = if value.eq_ignore_ascii_case("default") {
            default_settings().get(name).cloned().unwrap_or_default()
        } else {
            value.to_string()
        };
        match name {
            "timezone" | "time zone" => {
                let utc = [
                    "utc",
                    "gmt",
                    "etc/utc",
                    "z",
                    "+00",
                    "+00:00",
                    "0",
                    "00:00",
                    "zulu",
                    "universal",
                ];
                if !utc.contains(&value.to_lowercase().as_str()) {
                    return Err(Error::unsupported(format!(
                        "time zone \"{value}\" (sessions run in UTC)"
                    )));
                }
                self.settings.insert("timezone".into(), "UTC".into());
            }
            "client_encoding"
                if !["utf8", "utf-8", "unicode"].contains(&value.to_lowercase().as_str()) =>
            {
                return Err(Error::unsupported(format!("client encoding \"{value}\"")));
            }
            cluster::COMMIT_TRACE => {
                let on = match value.to_lowercase().as_str() {
                    "on" | "true" | "yes" | "1" => "on",
                    "off" | "false" | "no" | "0" => "off",
                    _ => {
                        return Err(Error::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("parameter \"{name}\" requires a Boolean value"),
                        ))
                    }
                };
                self.settings.insert(name.to_string(), on.into());
            }
            "transaction_isolation" | "default_transaction_isolation" => {
                // Every transaction is serializable; weaker requests get stronger isolation.
            }
            _ => {
                self.settings.insert(name.to_string(), value);
            }
        }
        Ok(())
    }

    fn show(&self, name: &str) -> Result<Reply> {
        if name == cluster::SHOW_DATA_CENTERS {
            let rows = cluster::data_center_rows(&self.engine);
            return Ok(Reply::Rows {
                columns: cluster::data_center_columns(),
                rows: Box::pin(futures::stream::iter(vec![Ok(rows)])),
                tag: "SHOW".into(),
            });
        }
        let name = match name {
            "time zone" => "timezone",
            "transaction isolation level" => "transaction_isolation",
            other => other,
        };
        let rows: Vec<Vec<Datum>> = if name == "all" {
            self.settings
                .iter()
                .map(|(k, v)| {
                    vec![
                        Datum::Text(k.clone()),
                        Datum::Text(v.clone()),
                        Datum::Text(String::new()),
                    ]
                })
                .collect()
        } else {
            let value = self.settings.get(name).ok_or_else(|| {
                Error::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{name}\""),
                )
            })?;
            vec![vec![Datum::Text(value.clone())]]
        };
        let text = planner::types::SqlType::Text;
        let columns = if name == "all" {
            ["name", "setting", "description"]
                .iter()
                .map(|n| OutputColumn {
                    name: n.to_string(),
                    ty: text.clone(),
                })
                .collect()
        } else {
            vec![OutputColumn {
                name: name.to_string(),
                ty: text,
            }]
        };
        Ok(Reply::Rows {
            columns,
            rows: Box::pin(futures::stream::iter(vec![Ok(rows)])),
            tag: "SHOW".into(),
        })
    }

    /// Ends the session: an open transaction rolls back.
    pub fn close(&mut self) {
        if let Some(txn) = self.txn.take() {
            txn.rollback();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

fn warning(tag: &str, code: &'static str, message: &str) -> Reply {
    Reply::Notice {
        tag: tag.into(),
        severity: "WARNING",
        code,
        message: message.into(),
    }
}

fn check_modes(modes: &[TransactionMode]) -> Result<()> {
    for m in modes {
        if let TransactionMode::AccessMode(
            datafusion::sql::sqlparser::ast::TransactionAccessMode::ReadOnly,
        ) = m
        {
            // Accepted: read-only transactions are simply transactions that do not write.
        }
    }
    Ok(())
}

fn object_name_text(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

fn setting_value(e: &Expr) -> String {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s),
            ..
        }) => s.clone(),
        Expr::Value(ValueWithSpan {
            value: Value::Number(n, _),
            ..
        }) => n.clone(),
        Expr::Value(ValueWithSpan {
            value: Value::Boolean(b),
            ..
        }) => {
            if *b {
                "on".into()
            } else {
                "off".into()
            }
        }
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}
