//! The PostgreSQL wire protocol, on `pgwire`.
//!
//! pgwire frames messages and drives the connection state machine; we implement the
//! handlers. `on_query` (simple protocol) and `on_execute` (extended protocol) are ours
//! rather than pgwire's defaults because the ReadyForQuery status must follow the
//! [`Session`]: a failed COMMIT ends the block (status `I`), an error inside a block fails
//! it (`E`), and a multi-statement simple query stops at its first error.
//!
//! Statements are parsed with DataFusion's sqlparser (PostgreSQL dialect). A prepared
//! statement keeps its parse tree and, after the first Describe or Execute, the planner's
//! analysis ([`Prepared`]) — parameter types, result columns, the point fast-path plan.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt};
use parking_lot::Mutex;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    send_execution_response, send_ready_for_query, ExtendedQueryHandler, SimpleQueryHandler,
};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, ConnectionManager, PgWireConnectionState,
    PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::{EmptyQueryResponse, NoticeResponse, TransactionStatus};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use planner::types::{Datum, SqlType};
use planner::{Error, OutputColumn, Planner, Prepared};
use tokio::sync::Mutex as AsyncMutex;

use datafusion::sql::sqlparser::ast::Statement;

use crate::encode::{data_row, fields, pg_type};
use crate::parse::parse_statements;
use crate::session::{Reply, Session, Status};

/// A statement as stored by Parse: its text, parse tree and cached analysis.
#[derive(Clone)]
pub struct ParsedStatement {
    pub sql: String,
    pub statement: Option<Arc<Statement>>,
    /// Error from parsing, reported at Execute (like PostgreSQL, Parse itself already
    /// failed for syntax errors, so this holds only multi-statement strings).
    pub prepared: Arc<Mutex<Option<Arc<Prepared>>>>,
}

/// The per-connection session, in pgwire's session extensions.
type SessionSlot = Arc<AsyncMutex<Session>>;

pub struct Handlers {
    engine: Arc<Planner>,
    parser: Arc<Parser>,
    connections: Arc<ConnectionManager>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Handlers {
    pub fn new(engine: Arc<Planner>) -> Arc<Handlers> {
        let connections = Arc::new(ConnectionManager::new());
        Arc::new(Handlers {
            parser: Arc::new(Parser {
                engine: engine.clone(),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(connections.clone())),
            engine,
            connections,
        })
    }

    pub(crate) fn session<C: ClientInfo>(&self, client: &C) -> SessionSlot {
        client
            .session_extensions()
            .get_or_insert_with(|| AsyncMutex::new(Session::new(self.engine.clone())))
    }

    fn suspended<C: ClientInfo>(&self, client: &C) -> Arc<Suspended> {
        client
            .session_extensions()
            .get_or_insert_with(Suspended::default)
    }
}

pub(crate) fn user_error(e: &Error) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), e.sqlstate.into(), e.message.clone());
    info.detail = e.detail.clone();
    info
}

fn to_pgwire(e: Error) -> PgWireError {
    PgWireError::UserError(Box::new(user_error(&e)))
}

pub(crate) fn wire_status(status: Status) -> TransactionStatus {
    match status {
        Status::Idle => TransactionStatus::Idle,
        Status::InBlock => TransactionStatus::Transaction,
        Status::Failed => TransactionStatus::Error,
    }
}

pub const SERVER_PARAMS: &[(&str, &str)] = &[
    ("server_version", crate::SERVER_VERSION),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("is_superuser", "on"),
    ("default_transaction_read_only", "off"),
    ("in_hot_standby", "off"),
];

struct Params;

impl ServerParameterProvider for Params {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let mut params: HashMap<String, String> = SERVER_PARAMS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let meta = client.metadata();
        if let Some(user) = meta.get("user") {
            params.insert("session_authorization".into(), user.clone());
        }
        params.insert(
            "application_name".into(),
            meta.get("application_name").cloned().unwrap_or_default(),
        );
        Some(params)
    }
}

#[async_trait]
impl StartupHandler for Handlers {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Ok(());
        };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let database = client
            .metadata()
            .get("database")
            .or_else(|| client.metadata().get("user"))
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        if database != "postgres" {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "3D000".into(),
                format!("database \"{database}\" does not exist"),
            ))));
        }
        let (pid, secret) = crate::cancel_key();
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.connections.register(pid, secret);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert(guard);
        let _ = Authentication::Ok;
        finish_authentication(client, &Params).await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        Ok(())
    }
}

async fn cancel_receiver<C: ClientInfo>(
    client: &C,
) -> Option<futures::channel::oneshot::Receiver<()>> {
    let handle = client.session_extensions().get::<Arc<ConnectionHandle>>()?;
    Some(handle.start_query().await)
}

fn canceled() -> Error {
    Error::new("57014", "canceling statement due to user request")
}

/// Sends one statement's reply; returns false if it was an error.
async fn send_reply<C>(
    client: &mut C,
    reply: planner::Result<Reply>,
    format: &Format,
    describe: bool,
    max_rows: usize,
) -> PgWireResult<Sent>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match reply {
        Err(e) => {
            client
                .feed(PgWireBackendMessage::ErrorResponse(user_error(&e).into()))
                .await?;
            Ok(Sent::Failed)
        }
        Ok(Reply::Command(tag)) | Ok(Reply::Begin(tag)) | Ok(Reply::End(tag)) => {
            send_execution_response(client, Tag::new(&tag)).await?;
            Ok(Sent::Done)
        }
        Ok(Reply::Notice {
            tag,
            severity,
            code,
            message,
        }) => {
            let info = ErrorInfo::new(severity.into(), code.into(), message);
            client
                .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                    info,
                )))
                .await?;
            send_execution_response(client, Tag::new(&tag)).await?;
            Ok(Sent::Done)
        }
        Ok(Reply::Rows { columns, rows, tag }) => {
            if describe {
                let schema = fields(&columns, format);
                client
                    .feed(PgWireBackendMessage::RowDescription(
                        pgwire::messages::data::RowDescription::new(
                            schema.iter().map(Into::into).collect(),
                        ),
                    ))
                    .await?;
            }
            let rows = rows
                .flat_map(|chunk| match chunk {
                    Ok(chunk) => futures::stream::iter(chunk.into_iter().map(Ok)).left_stream(),
                    Err(e) => futures::stream::once(async { Err(e) }).right_stream(),
                })
                .boxed();
            let portal = PortalRows { columns, rows, tag };
            send_rows(client, portal, format, max_rows).await
        }
    }
}

/// What [`send_reply`] sent.
enum Sent {
    Done,
    Failed,
    /// The row limit was reached with rows left: PortalSuspended was sent.
    Suspended(PortalRows),
    /// All rows were sent; executing the portal again returns no rows.
    Finished(PortalRows),
}

/// The rows of an executing portal, one by one.
struct PortalRows {
    columns: Vec<OutputColumn>,
    rows: futures::stream::BoxStream<'static, planner::Result<Vec<Datum>>>,
    tag: String,
}

/// The rows of row-returning portals after their first Execute, by portal name: what is
/// left after the client's row limit (holding the statement's snapshot), or nothing once
/// all were sent. A new Bind of the name, Close, or the end of the transaction drops them.
#[derive(Default)]
struct Suspended(Mutex<HashMap<String, PortalRows>>);

/// Sends up to `max_rows` rows (0: all) and CommandComplete, or PortalSuspended.
async fn send_rows<C>(
    client: &mut C,
    mut portal: PortalRows,
    format: &Format,
    max_rows: usize,
) -> PgWireResult<Sent>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut count = 0usize;
    while max_rows == 0 || count < max_rows {
        match portal.rows.next().await {
            Some(Ok(row)) => {
                client
                    .feed(PgWireBackendMessage::DataRow(data_row(
                        &row,
                        &portal.columns,
                        format,
                    )?))
                    .await?;
                count += 1;
            }
            Some(Err(e)) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(user_error(&e).into()))
                    .await?;
                return Ok(Sent::Failed);
            }
            None => {
                let tag = if portal.tag == "SHOW" {
                    Tag::new("SHOW")
                } else {
                    Tag::new(&format!("{} {count}", portal.tag))
                };
                client
                    .feed(PgWireBackendMessage::CommandComplete(tag.into()))
                    .await?;
                portal.rows = futures::stream::empty().boxed();
                return Ok(Sent::Finished(portal));
            }
        }
    }
    client
        .feed(PgWireBackendMessage::PortalSuspended(
            pgwire::messages::extendedquery::PortalSuspended::new(),
        ))
        .await?;
    Ok(Sent::Suspended(portal))
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    async fn on_query<C>(
        &self,
        client: &mut C,
        query: pgwire::messages::simplequery::Query,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let slot = self.session(client);
        let mut session = slot.lock().await;
        match parse_statements(&query.query) {
            Ok(statements) if statements.is_empty() => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
            }
            Ok(statements) => {
                let count = statements.len();
                for (i, statement) in statements.into_iter().enumerate() {
                    if crate::copy::is_copy_in(&statement) {
                        if i + 1 < count {
                            session.fail();
                            let e = Error::unsupported(
                                "COPY FROM STDIN followed by other statements in one query",
                            );
                            client
                                .feed(PgWireBackendMessage::ErrorResponse(user_error(&e).into()))
                                .await?;
                            break;
                        }
                        if crate::copy::start(client, &mut session, &statement, false).await? {
                            // ReadyForQuery comes after CopyDone / CopyFail.
                            return Ok(());
                        }
                        session.fail();
                        break;
                    }
                    let cancel = cancel_receiver(client).await;
                    let work = session.execute(&statement, None, &[]);
                    let reply = match cancel {
                        Some(rx) => tokio::select! {
                            r = work => r,
                            _ = rx => Err(canceled()),
                        },
                        None => work.await,
                    };
                    let sent = send_reply(client, reply, &Format::UnifiedText, true, 0).await?;
                    if matches!(sent, Sent::Failed) {
                        session.fail();
                        break;
                    }
                }
            }
            Err(e) => {
                session.fail();
                client
                    .feed(PgWireBackendMessage::ErrorResponse(user_error(&e).into()))
                    .await?;
            }
        }
        let status = wire_status(session.status());
        if session.status() == Status::Idle {
            self.suspended(client).0.lock().clear();
        }
        drop(session);
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await?;
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        unreachable!("on_query is overridden")
    }
}

pub struct Parser {
    engine: Arc<Planner>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = ParsedStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<ParsedStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let _ = &self.engine;
        let mut statements = parse_statements(sql).map_err(to_pgwire)?;
        if statements.len() > 1 {
            return Err(to_pgwire(Error::new(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            )));
        }
        Ok(statements.pop().map(|s| ParsedStatement {
            sql: sql.to_string(),
            statement: Some(Arc::new(s)),
            prepared: Arc::new(Mutex::new(None)),
        }))
    }

    fn get_parameter_types(&self, _stmt: &ParsedStatement) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(
        &self,
        _stmt: &ParsedStatement,
        _format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

/// Whether a statement is handled by the session itself (no planner analysis).
fn is_control(s: &Statement) -> bool {
    matches!(
        s,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::Discard { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
    )
}

impl Handlers {
    /// The statement's analysis, computed once and cached.
    async fn analysis(
        &self,
        session: &Session,
        parsed: &ParsedStatement,
    ) -> planner::Result<Option<Arc<Prepared>>> {
        let Some(statement) = &parsed.statement else {
            return Ok(None);
        };
        if is_control(statement) {
            return Ok(None);
        }
        if let Some(p) = parsed.prepared.lock().clone() {
            return Ok(Some(p));
        }
        let prepared = Arc::new(session.prepare((**statement).clone()).await?);
        *parsed.prepared.lock() = Some(prepared.clone());
        Ok(Some(prepared))
    }

    fn show_columns(statement: &Statement) -> Option<Vec<OutputColumn>> {
        match statement {
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                if name == crate::cluster::SHOW_DATA_CENTERS {
                    return Some(crate::cluster::data_center_columns());
                }
                Some(vec![OutputColumn {
                    name,
                    ty: SqlType::Text,
                }])
            }
            _ => None,
        }
    }
}

/// Decodes bound parameter values.
fn decode_params(
    portal: &Portal<ParsedStatement>,
    types: &[SqlType],
) -> planner::Result<Vec<Datum>> {
    let declared = &portal.statement.parameter_types;
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let ty = declared
                .get(i)
                .cloned()
                .flatten()
                .and_then(|t| SqlType::from_oid(t.oid()))
                .or_else(|| types.get(i).cloned())
                .unwrap_or(SqlType::Text);
            let Some(bytes) = raw else {
                return Ok(Datum::Null);
            };
            let value = if portal.parameter_format.is_binary(i) {
                Datum::from_pg_binary(bytes, &ty)?
            } else {
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    Error::new("22021", "invalid byte sequence for encoding \"UTF8\"")
                })?;
                Datum::parse_text(text, &ty)?
            };
            Ok(value)
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = ParsedStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn on_execute<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Execute,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
        let portal = match client.portal_store().get_portal(name) {
            Some(pgwire::api::store::Entry::Value(p)) => p,
            Some(pgwire::api::store::Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await?;
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(name.to_owned())),
        };
        let suspended = self.suspended(client);
        let resumed = suspended.0.lock().remove(name);
        if let Some(rows) = resumed {
            // A later Execute of a suspended portal continues where the last one stopped.
            return match send_rows(client, rows, &portal.result_column_format, max_rows).await? {
                Sent::Suspended(rows) | Sent::Finished(rows) => {
                    suspended.0.lock().insert(name.to_owned(), rows);
                    Ok(())
                }
                Sent::Done => Ok(()),
                Sent::Failed => {
                    let slot = self.session(client);
                    let mut session = slot.lock().await;
                    session.fail();
                    client.set_transaction_status(wire_status(session.status()));
                    client.set_state(PgWireConnectionState::AwaitingSync);
                    Ok(())
                }
            };
        }
        let Some(statement) = portal.statement.statement.statement.clone() else {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            return Ok(());
        };
        let slot = self.session(client);
        let mut session = slot.lock().await;
        if crate::copy::is_copy_in(&statement) {
            if !crate::copy::start(client, &mut session, &statement, true).await? {
                session.fail();
                client.set_transaction_status(wire_status(session.status()));
                client.set_state(PgWireConnectionState::AwaitingSync);
            }
            return Ok(());
        }
        let reply = async {
            let prepared = if session.status() == Status::Failed {
                None
            } else {
                self.analysis(&session, &portal.statement.statement).await?
            };
            let types = prepared
                .as_ref()
                .map(|p| p.param_types.clone())
                .unwrap_or_default();
            let params = decode_params(&portal, &types)?;
            session
                .execute(&statement, prepared.as_deref(), &params)
                .await
        };
        let cancel = cancel_receiver(client).await;
        let reply = match cancel {
            Some(rx) => tokio::select! {
                r = reply => r,
                _ = rx => Err(canceled()),
            },
            None => reply.await,
        };
        let sent = send_reply(client, reply, &portal.result_column_format, false, max_rows).await?;
        let ok = !matches!(sent, Sent::Failed);
        if let Sent::Suspended(rows) | Sent::Finished(rows) = sent {
            suspended.0.lock().insert(name.to_owned(), rows);
        }
        if !ok {
            session.fail();
        }
        let status = wire_status(session.status());
        drop(session);
        client.set_transaction_status(status);
        if !ok {
            // Like any extended-protocol error: skip to Sync.
            client.set_state(PgWireConnectionState::AwaitingSync);
        }
        Ok(())
    }

    /// Like pgwire's, and ends the implicit transaction's suspended portals: outside a
    /// transaction block a portal lives until Sync, inside one until the block ends.
    async fn on_sync<C>(
        &self,
        client: &mut C,
        _message: pgwire::messages::extendedquery::Sync,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // The status every statement handler left for ReadyForQuery.
        let idle = client.transaction_status() == TransactionStatus::Idle;
        {
            let suspended = self.suspended(client);
            let mut portals = suspended.0.lock();
            if idle {
                portals.clear();
            } else {
                portals.remove(pgwire::api::DEFAULT_NAME);
            }
        }
        client.portal_store().rm_portal(pgwire::api::DEFAULT_NAME);
        client
            .send(PgWireBackendMessage::ReadyForQuery(
                pgwire::messages::response::ReadyForQuery::new(client.transaction_status()),
            ))
            .await?;
        client.flush().await?;
        Ok(())
    }

    /// Like pgwire's, and drops a closed portal's suspended rows.
    async fn on_close<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Close,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::messages::extendedquery::{
            CloseComplete, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
        };
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => client.portal_store().rm_statement(name),
            TARGET_TYPE_BYTE_PORTAL => {
                self.suspended(client).0.lock().remove(name);
                client.portal_store().rm_portal(name);
            }
            _ => {}
        }
        client
            .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    /// Like pgwire's, but feeds BindComplete instead of flushing it: the client gets one
    /// packet per Sync, not one per message (this halves the round trips of a prepared
    /// point query).
    async fn on_bind<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Bind,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message
            .statement_name
            .as_deref()
            .unwrap_or(pgwire::api::DEFAULT_NAME);
        let portal_name = message
            .portal_name
            .as_deref()
            .unwrap_or(pgwire::api::DEFAULT_NAME);
        self.suspended(client).0.lock().remove(portal_name);
        match client.portal_store().get_statement(statement_name) {
            Some(pgwire::api::store::Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(pgwire::api::store::Entry::Empty) => {
                client.portal_store().put_empty_portal(portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(
                pgwire::messages::extendedquery::BindComplete::new(),
            ))
            .await?;
        Ok(())
    }

    /// Like pgwire's, but feeds the description instead of flushing each message.
    async fn on_describe<C>(
        &self,
        client: &mut C,
        message: pgwire::messages::extendedquery::Describe,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use pgwire::api::store::Entry;
        use pgwire::messages::data::{NoData, ParameterDescription};
        use pgwire::messages::extendedquery::{
            TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
        };
        let name = message.name.as_deref().unwrap_or(pgwire::api::DEFAULT_NAME);
        let (params, fields): (Option<Vec<Type>>, Vec<FieldInfo>) = match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) => {
                    let r = self.do_describe_statement(client, &stmt).await?;
                    (Some(r.parameters), r.fields)
                }
                Some(Entry::Empty) => (Some(Vec::new()), Vec::new()),
                None => return Err(PgWireError::StatementNotFound(name.to_owned())),
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    (None, self.do_describe_portal(client, &portal).await?.fields)
                }
                Some(Entry::Empty) => (None, Vec::new()),
                None => return Err(PgWireError::PortalNotFound(name.to_owned())),
            },
            other => return Err(PgWireError::InvalidTargetType(other)),
        };
        if let Some(params) = params {
            client
                .feed(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(params.iter().map(|t| t.oid()).collect()),
                ))
                .await?;
        }
        if fields.is_empty() {
            client
                .feed(PgWireBackendMessage::NoData(NoData::new()))
                .await?;
        } else {
            client
                .feed(PgWireBackendMessage::RowDescription(
                    pgwire::messages::data::RowDescription::new(
                        fields.iter().map(Into::into).collect(),
                    ),
                ))
                .await?;
        }
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<ParsedStatement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = self.session(client);
        let session = slot.lock().await;
        let Some(statement) = &target.statement.statement else {
            return Ok(DescribeStatementResponse::no_data());
        };
        if let Some(cols) = Self::show_columns(statement) {
            return Ok(DescribeStatementResponse::new(
                vec![],
                fields(&cols, &Format::UnifiedText).to_vec(),
            ));
        }
        let prepared = self
            .analysis(&session, &target.statement)
            .await
            .map_err(to_pgwire)?;
        let Some(prepared) = prepared else {
            return Ok(DescribeStatementResponse::no_data());
        };
        let mut params: Vec<Type> = prepared.param_types.iter().map(pg_type).collect();
        for (i, declared) in target.parameter_types.iter().enumerate() {
            if let Some(t) = declared {
                if i < params.len() {
                    params[i] = t.clone();
                } else {
                    params.push(t.clone());
                }
            }
        }
        let columns = match &prepared.columns {
            Some(cols) => fields(cols, &Format::UnifiedText).to_vec(),
            None => Vec::new(),
        };
        Ok(DescribeStatementResponse::new(params, columns))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<ParsedStatement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = self.session(client);
        let session = slot.lock().await;
        let Some(statement) = &portal.statement.statement.statement else {
            return Ok(DescribePortalResponse::no_data());
        };
        if let Some(cols) = Self::show_columns(statement) {
            return Ok(DescribePortalResponse::new(
                fields(&cols, &portal.result_column_format).to_vec(),
            ));
        }
        if session.status() == Status::Failed {
            return Ok(DescribePortalResponse::no_data());
        }
        let prepared = self
            .analysis(&session, &portal.statement.statement)
            .await
            .map_err(to_pgwire)?;
        match prepared.and_then(|p| p.columns.clone()) {
            Some(cols) => Ok(DescribePortalResponse::new(
                fields(&cols, &portal.result_column_format).to_vec(),
            )),
            None => Ok(DescribePortalResponse::no_data()),
        }
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &Portal<ParsedStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        unreachable!("on_execute is overridden")
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(self.clone_shallow())
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(self.clone_shallow())
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(self.clone_shallow())
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::new(self.clone_shallow())
    }
}

impl Handlers {
    fn clone_shallow(&self) -> Handlers {
        Handlers {
            engine: self.engine.clone(),
            parser: self.parser.clone(),
            connections: self.connections.clone(),
            cancel: self.cancel.clone(),
        }
    }
}
