//! The [`AsyncDB`] driver: any Postgres-wire server through tokio-postgres, simple query
//! protocol only, so every value arrives as text and is formatted the way SQLite's
//! sqllogictest runner formats it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long one statement may run before the record fails and the connection is dropped.
/// Override with `SQLLOGIC_STATEMENT_TIMEOUT_SECS`.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The start of the error a timed-out statement fails with.
pub const TIMEOUT_MESSAGE: &str = "statement timed out after";

/// The column types the record being run expects (`query IRT` -> I, R, T). The runner sets
/// them before each record; every connection of a file shares them.
pub type ExpectedTypes = Arc<Mutex<Vec<DefaultColumnType>>>;

/// An error from the server (or the connection), with its SQLSTATE when the server sent one.
#[derive(Debug, Clone)]
pub struct PgError {
    pub message: String,
    pub sqlstate: Option<String>,
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PgError {}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            // `ERROR: message` plus DETAIL/HINT lines: regexes in `statement error` match it.
            Some(db) => PgError {
                message: db.to_string(),
                sqlstate: Some(db.code().code().to_string()),
            },
            None => PgError {
                message: match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                },
                sqlstate: None,
            },
        }
    }
}

/// One connection. Reconnects lazily if a statement timed out (the session is then lost).
pub struct PgDb {
    url: String,
    client: Option<Client>,
    conn_task: Option<JoinHandle<()>>,
    expected: ExpectedTypes,
    timeout: Duration,
}

impl PgDb {
    pub async fn connect(url: &str, expected: ExpectedTypes) -> Result<Self, PgError> {
        let mut db = PgDb {
            url: url.to_string(),
            client: None,
            conn_task: None,
            expected,
            timeout: statement_timeout(),
        };
        db.reconnect().await?;
        Ok(db)
    }

    async fn reconnect(&mut self) -> Result<(), PgError> {
        self.close().await;
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
        self.conn_task = Some(spawn_connection(connection));
        self.client = Some(client);
        Ok(())
    }

    /// Drops the client and waits until the socket is closed, so that the server has seen
    /// the session end (and rolled back its transaction) before anyone else touches the
    /// tables it used.
    async fn close(&mut self) {
        self.client = None;
        if let Some(task) = self.conn_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// Drives a connection until it closes. Notices (`DROP ... IF EXISTS` of a missing table
/// sends one) are dropped instead of logged; errors surface through the client.
pub fn spawn_connection<S, T>(mut connection: tokio_postgres::Connection<S, T>) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(_)) = futures::StreamExt::next(&mut messages).await {}
    })
}

fn statement_timeout() -> Duration {
    std::env::var("SQLLOGIC_STATEMENT_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_STATEMENT_TIMEOUT)
}

#[async_trait::async_trait]
impl AsyncDB for PgDb {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        if self.client.is_none() {
            self.reconnect().await?;
        }
        let client = self.client.as_ref().expect("connected above");
        let messages = match tokio::time::timeout(self.timeout, client.simple_query(sql)).await {
            Ok(result) => result?,
            Err(_) => {
                // The session is in an unknown state: drop it, reconnect on the next record.
                self.client = None;
                self.conn_task.take();
                return Err(PgError {
                    message: format!("{TIMEOUT_MESSAGE} {:?}", self.timeout),
                    sqlstate: None,
                });
            }
        };
        let expected = self.expected.lock().expect("poisoned").clone();
        Ok(to_output(messages, &expected))
    }

    async fn shutdown(&mut self) {
        self.close().await;
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    async fn run_command(command: std::process::Command) -> std::io::Result<std::process::Output> {
        tokio::process::Command::from(command).output().await
    }

    fn error_sql_state(err: &PgError) -> Option<String> {
        err.sqlstate.clone()
    }
}

/// Turns the messages of one simple query into the runner's output. A result set (even an
/// empty one) is `Rows`; anything else is `StatementComplete` with the affected row count.
/// With several statements in one record, the last result set wins.
fn to_output(
    messages: Vec<SimpleQueryMessage>,
    expected: &[DefaultColumnType],
) -> DBOutput<DefaultColumnType> {
    let mut ncols: Option<usize> = None;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut count = 0;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                ncols = Some(columns.len());
                rows.clear();
            }
            SimpleQueryMessage::Row(row) => {
                ncols.get_or_insert(row.len());
                let values = (0..row.len())
                    .map(|i| format_value(row.get(i), expected.get(i)))
                    .collect();
                rows.push(values);
            }
            SimpleQueryMessage::CommandComplete(n) => count = n,
            _ => {}
        }
    }
    match ncols {
        Some(n) => DBOutput::Rows {
            types: (0..n)
                .map(|i| expected.get(i).cloned().unwrap_or(DefaultColumnType::Any))
                .collect(),
            rows,
        },
        None => DBOutput::StatementComplete(count),
    }
}

/// SQLite sqllogictest conventions: NULL is `NULL`; `I` prints an integer (a fractional
/// value is truncated toward zero, a boolean is 1/0, as ODBC would convert it); `R` prints
/// `%.3f`; text prints as is, the empty string as `(empty)`, control characters as `@`.
pub fn format_value(value: Option<&str>, ty: Option<&DefaultColumnType>) -> String {
    let Some(v) = value else {
        return "NULL".to_string();
    };
    match ty {
        Some(DefaultColumnType::Integer) => format_integer(v),
        Some(DefaultColumnType::FloatingPoint) => format_real(v),
        _ => format_text(v),
    }
}

fn format_integer(v: &str) -> String {
    let t = v.trim();
    // Printed from the parsed value: `-0` (a negated zero double) is 0.
    if let Ok(n) = t.parse::<i128>() {
        return n.to_string();
    }
    match t {
        "t" | "true" => return "1".to_string(),
        "f" | "false" => return "0".to_string(),
        _ => {}
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_finite() => format!("{}", f.trunc() as i128),
        _ => format_text(v),
    }
}

fn format_real(v: &str) -> String {
    match v.trim().parse::<f64>() {
        Ok(f) => format!("{f:.3}"),
        Err(_) => format_text(v),
    }
}

fn format_text(v: &str) -> String {
    if v.is_empty() {
        return "(empty)".to_string();
    }
    v.chars()
        .map(|c| if c.is_control() { '@' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DefaultColumnType::*;

    #[test]
    fn formats_like_sqlite_runner() {
        assert_eq!(format_value(None, Some(&Integer)), "NULL");
        assert_eq!(format_value(Some(""), Some(&Text)), "(empty)");
        assert_eq!(format_value(Some("a\tb"), None), "a@b");
        assert_eq!(format_value(Some("-7"), Some(&Integer)), "-7");
        assert_eq!(format_value(Some("-7.9"), Some(&Integer)), "-7");
        assert_eq!(format_value(Some("12.0000"), Some(&Integer)), "12");
        assert_eq!(format_value(Some("t"), Some(&Integer)), "1");
        assert_eq!(format_value(Some("-0"), Some(&Integer)), "0");
        assert_eq!(format_value(Some("3"), Some(&FloatingPoint)), "3.000");
        assert_eq!(
            format_value(Some("-12.34567"), Some(&FloatingPoint)),
            "-12.346"
        );
        assert_eq!(format_value(Some("120.50"), Some(&Text)), "120.50");
        assert_eq!(format_value(Some("t"), Some(&Text)), "t");
    }
}
