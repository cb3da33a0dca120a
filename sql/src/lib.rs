//! # sql — the PostgreSQL wire protocol front end
//!
//! A pgwire server speaking the simple and extended query protocols: sessions with
//! transaction blocks and settings ([`session`]), statement parsing ([`parse`]), result
//! encoding in text and binary formats ([`encode`]) and the protocol handlers
//! ([`handler`]). Statements run through the `planner`; every error carries a SQLSTATE.
//!
//! Invariants: the server never panics on client input — bad SQL, bad parameters and
//! protocol garbage get an error response (garbage: a closed connection) and other
//! sessions are unaffected; ReadyForQuery always reports the session's real status
//! (`I`, `T` or `E`).
//!
//! Caveats: trust authentication only (any user, database `postgres`); no TLS yet;
//! Execute with a row limit returns all rows (no portal suspension); sessions run in UTC.

pub mod cluster;
pub mod copy;
pub mod encode;
pub mod handler;
pub mod parse;
pub mod session;

use std::future::Future;
use std::sync::Arc;

use pgwire::messages::startup::SecretKey;
use planner::Planner;
use tokio::net::TcpListener;

/// The PostgreSQL version we present (clients pick their catalog queries from it).
pub const SERVER_VERSION: &str = "16.4";
pub const SERVER_VERSION_NUM: &str = "160004";

/// A fresh cancel key for a connection.
pub fn cancel_key() -> (i32, SecretKey) {
    let pid = rand::random::<i32>().abs().max(1);
    let secret = rand::random::<i32>();
    (pid, SecretKey::I32(secret))
}

/// Serves connections from `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Planner>,
    shutdown: impl Future<Output = ()>,
) {
    let handlers = handler::Handlers::new(engine);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = handlers.clone();
                    tokio::spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                            tracing::debug!(%peer, "connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}
