//! The COPY sub-protocol: `COPY … FROM STDIN` over the simple and the extended protocol.
//!
//! The statement's handler calls [`start`]: the session opens the COPY (its own
//! transaction under autocommit, else the block's), the client gets CopyInResponse and
//! the connection enters pgwire's copy-in state. CopyData messages then reach
//! [`CopyHandler::on_copy_data`] and are parsed and inserted as they arrive; CopyDone
//! commits (autocommit) and answers `COPY n`, or reports the first error; CopyFail aborts.
//! pgwire sends ReadyForQuery after CopyDone/CopyFail (simple protocol) or at Sync.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::Tag;
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse};
use pgwire::messages::PgWireBackendMessage;

use datafusion::sql::sqlparser::ast::{CopyTarget, Statement};

use crate::handler::{user_error, wire_status, Handlers};
use crate::session::Session;

/// Whether the statement is `COPY … FROM STDIN`.
pub fn is_copy_in(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Copy {
            to: false,
            target: CopyTarget::Stdin,
            ..
        }
    )
}

/// Opens the COPY and sends CopyInResponse; false (error sent) if it could not start.
pub async fn start<C>(
    client: &mut C,
    session: &mut Session,
    statement: &Statement,
    extended: bool,
) -> PgWireResult<bool>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match session.copy_start(statement) {
        Ok(columns) => {
            let columns = i16::try_from(columns).unwrap_or(i16::MAX);
            client
                .send(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
                    0,
                    columns,
                    vec![0; columns as usize],
                )))
                .await?;
            client.set_state(PgWireConnectionState::CopyInProgress(extended));
            Ok(true)
        }
        Err(e) => {
            client
                .feed(PgWireBackendMessage::ErrorResponse(user_error(&e).into()))
                .await?;
            Ok(false)
        }
    }
}

#[async_trait]
impl CopyHandler for Handlers {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = self.session(client);
        slot.lock().await.copy_data(&copy_data.data).await;
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = self.session(client);
        let mut session = slot.lock().await;
        let message = match session.copy_done().await {
            Ok(rows) => PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(rows as usize).into(),
            ),
            Err(e) => PgWireBackendMessage::ErrorResponse(user_error(&e).into()),
        };
        client.set_transaction_status(wire_status(session.status()));
        drop(session);
        client.feed(message).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = self.session(client);
        let mut session = slot.lock().await;
        let error = session.copy_fail(&fail.message);
        client.set_transaction_status(wire_status(session.status()));
        PgWireError::UserError(Box::new(user_error(&error)))
    }
}
