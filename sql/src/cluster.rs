//! What a session shows of the multi-DC cluster: `SHOW DATA CENTERS` (every DC, its
//! addresses, state and emulated delay as this node sees them) and the
//! `meridian.commit_trace` notice (where a commit's time went: execution, queueing,
//! the cross-DC protocol and its WAN delays).

use std::time::Duration;

use planner::types::{Datum, SqlType};
use planner::{OutputColumn, Planner};
use txn::CommitTrace;

/// The session setting that turns the commit notice on.
pub const COMMIT_TRACE: &str = "meridian.commit_trace";

/// `SHOW DATA CENTERS` (the words after SHOW, lowercased and joined by spaces).
pub const SHOW_DATA_CENTERS: &str = "data centers";

pub fn data_center_columns() -> Vec<OutputColumn> {
    use SqlType::{Bool, Float8, Int4, Int8, Text};
    [
        ("id", Int4),
        ("name", Text),
        ("sql_addr", Text),
        ("peer_addr", Text),
        ("local", Bool),
        ("state", Text),
        ("wan_delay_ms", Int8),
        ("wan_jitter_ms", Int8),
        ("wan_loss", Float8),
        ("last_heard_ms", Int8),
        ("rtt_ms", Float8),
        ("clock_offset_ms", Float8),
    ]
    .into_iter()
    .map(|(name, ty)| OutputColumn {
        name: name.into(),
        ty,
    })
    .collect()
}

/// One row per DC; a single-DC node shows itself.
pub fn data_center_rows(engine: &Planner) -> Vec<Vec<Datum>> {
    let Some(dcs) = engine.txns.data_centers() else {
        return vec![vec![
            Datum::Int4(0),
            Datum::Text("local".into()),
            Datum::Null,
            Datum::Null,
            Datum::Bool(true),
            Datum::Text("local".into()),
            Datum::Int8(0),
            Datum::Int8(0),
            Datum::Float8(0.0),
            Datum::Null,
            Datum::Null,
            Datum::Null,
        ]];
    };
    let int = |v: u64| Datum::Int8(i64::try_from(v).unwrap_or(i64::MAX));
    dcs.into_iter()
        .map(|dc| {
            vec![
                Datum::Int4(i32::from(dc.id)),
                Datum::Text(dc.name),
                Datum::Text(dc.sql_addr),
                Datum::Text(dc.peer_addr),
                Datum::Bool(dc.local),
                Datum::Text(dc.state.into()),
                int(dc.delay_ms),
                int(dc.jitter_ms),
                Datum::Float8(dc.loss),
                dc.last_heard_ms.map_or(Datum::Null, int),
                dc.rtt_ms.map_or(Datum::Null, Datum::Float8),
                dc.clock_offset_ms.map_or(Datum::Null, Datum::Float8),
            ]
        })
        .collect()
}

/// The notice text for a commit: `execute` is the time spent running the statement
/// (None for COMMIT of a block), `commit` the whole commit call.
pub fn trace_notice(
    version: Option<u64>,
    trace: Option<CommitTrace>,
    execute: Option<Duration>,
    commit: Duration,
) -> String {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let mut parts = Vec::new();
    if let Some(e) = execute {
        parts.push(format!("execute {}", ms(e)));
    }
    match (version, trace) {
        (Some(v), Some(t)) => parts.push(format!(
            "commit {} at version {v}: {} WAN delay{}, protocol {}, queued {}",
            ms(commit),
            t.wan_delays,
            if t.wan_delays == 1 { "" } else { "s" },
            ms(Duration::from_micros(t.protocol_us)),
            ms(Duration::from_micros(t.queued_us)),
        )),
        (Some(v), None) => parts.push(format!("commit {} at version {v} (local)", ms(commit))),
        (None, _) => parts.push(format!("commit {} (read-only: no WAN delay)", ms(commit))),
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_names_every_phase() {
        let trace = CommitTrace {
            wan_delays: 2,
            queued_us: 120,
            protocol_us: 101_240,
        };
        let text = trace_notice(
            Some(42),
            Some(trace),
            Some(Duration::from_micros(700)),
            Duration::from_micros(101_900),
        );
        assert_eq!(
            text,
            "execute 0.7 ms; commit 101.9 ms at version 42: 2 WAN delays, protocol 101.2 ms, \
             queued 0.1 ms"
        );
        assert_eq!(
            trace_notice(None, None, None, Duration::from_micros(80)),
            "commit 0.1 ms (read-only: no WAN delay)"
        );
    }
}
