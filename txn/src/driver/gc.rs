//! Background collection of old MVCC versions (issue 12, item 7; kv's `mvcc::gc`).
//!
//! Every [`GcSettings::period`] (10 s) the task computes the GC horizon — the older of the read horizon
//! (every live and future local snapshot is at or above it; the transaction manager
//! keeps it at or below the complete point, so every commit at or below it is applied)
//! and the clock minus the retention ([`GcSettings::ttl`], 4 h by default) — and walks
//! the whole version keyspace once in passes of [`PASS_ENTRIES`] entries, each on a
//! blocking thread, deleting what no read at or above the horizon can see. Commits go
//! on meanwhile: they only install versions above the horizon.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kv::{GcCursor, GcPass};
use replication::DcClock;

use super::Shared;

/// How often a collection round starts, by default.
pub const GC_PERIOD: Duration = Duration::from_secs(10);

/// Entries examined per pass.
const PASS_ENTRIES: usize = 4096;

/// How long old versions are kept.
#[derive(Clone, Copy, Debug)]
pub struct GcSettings {
    /// Versions older than this (by the clock) are collected once no live snapshot
    /// needs them.
    pub ttl: Duration,
    /// How often a collection round starts.
    pub period: Duration,
}

impl Default for GcSettings {
    fn default() -> GcSettings {
        GcSettings {
            ttl: Duration::from_secs(4 * 3600),
            period: GC_PERIOD,
        }
    }
}

/// Runs collection rounds until the task is aborted.
pub(super) async fn run(shared: Arc<Shared>, settings: GcSettings) {
    let mut period = tokio::time::interval(settings.period);
    let mut cursor = GcCursor::default();
    loop {
        period.tick().await;
        let now = shared.clock.now_micros();
        let ttl = settings.ttl.as_micros() as u64;
        let retained = DcClock::latest_at(now.saturating_sub(ttl));
        let horizon = shared.read_horizon.load(Ordering::Acquire).min(retained);
        if horizon == 0 {
            continue;
        }
        let mut round = GcPass::default();
        loop {
            let store = shared.store.clone();
            let mut c = std::mem::take(&mut cursor);
            let done = tokio::task::spawn_blocking(move || {
                let pass = store.mvcc().collect_garbage(&mut c, horizon, PASS_ENTRIES);
                (c, pass)
            })
            .await;
            let pass = match done {
                Ok((c, Ok(pass))) => {
                    cursor = c;
                    pass
                }
                Ok((_, Err(e))) => {
                    tracing::warn!(%e, "collecting old versions failed; retrying later");
                    break;
                }
                Err(e) => {
                    tracing::error!(%e, "the version collector panicked");
                    return;
                }
            };
            round.examined += pass.examined;
            round.removed += pass.removed;
            if pass.wrapped {
                break;
            }
        }
        if round.removed > 0 {
            tracing::info!(
                examined = round.examined,
                removed = round.removed,
                horizon_age_s =
                    DcClock::physical(DcClock::latest_at(now).saturating_sub(horizon)) / 1_000_000,
                "old versions collected"
            );
        }
    }
}
