//! A run's history in Jepsen/Elle's JSON form: one `invoke` and one completion per
//! transaction (`ok`, `fail`, or `info` when the outcome is unknown), each with
//! `index`, `type`, `process` (the client), `time` (ns since the run began), `f` and
//! `value`; nemesis events as operations of process `"nemesis"`. List-append values are
//! Elle's micro-operations, `["append", k, v]` and `["r", k, [..]]` (reads are `null` in
//! the invocation), so the file loads into elle-cli as `--model list-append`; bank
//! values are `{"from", "to", "amount"}` transfers and `{id: balance}` reads, as in
//! Jepsen's bank test.

use serde_json::{json, Value};

use super::workload::TxnBody;
use crate::elle::{Op, Status};

/// One finished transaction or nemesis event.
pub struct Entry {
    pub process: Value,
    pub begin_ns: u64,
    pub end_ns: u64,
    pub status: Status,
    pub body: Body,
    pub error: Option<String>,
}

pub enum Body {
    Txn(TxnBody),
    /// A nemesis action: `f` (e.g. `kill`) and what it hit.
    Nemesis {
        f: String,
        value: Value,
    },
}

/// The history, invocations and completions interleaved in time order.
pub fn to_json(entries: &[Entry]) -> Value {
    let mut events: Vec<(u64, bool, Value)> = Vec::with_capacity(entries.len() * 2);
    for e in entries {
        let (f, invoke, done) = values(&e.body);
        let kind = match e.status {
            Status::Committed => "ok",
            Status::Aborted => "fail",
            Status::Unknown => "info",
        };
        events.push((
            e.begin_ns,
            false,
            json!({"type": "invoke", "process": e.process, "time": e.begin_ns, "f": f, "value": invoke}),
        ));
        let mut completion =
            json!({"type": kind, "process": e.process, "time": e.end_ns, "f": f, "value": done});
        if let Some(error) = &e.error {
            completion["error"] = json!(error);
        }
        events.push((e.end_ns, true, completion));
    }
    events.sort_by_key(|(t, completion, _)| (*t, *completion));
    Value::Array(
        events
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, mut v))| {
                v["index"] = json!(i);
                v
            })
            .collect(),
    )
}

/// (f, invocation value, completion value).
fn values(body: &Body) -> (String, Value, Value) {
    match body {
        Body::Nemesis { f, value } => (f.clone(), value.clone(), value.clone()),
        Body::Txn(TxnBody::Append(ops)) => {
            let mop = |op: &Op, done: bool| match op {
                Op::Append { key, value } => json!(["append", key, value]),
                Op::Read { key, list } if done => json!(["r", key, list]),
                Op::Read { key, .. } => json!(["r", key, null]),
            };
            (
                "txn".into(),
                Value::Array(ops.iter().map(|o| mop(o, false)).collect()),
                Value::Array(ops.iter().map(|o| mop(o, true)).collect()),
            )
        }
        Body::Txn(TxnBody::Transfer {
            from, to, amount, ..
        }) => {
            let v = json!({"from": from, "to": to, "amount": amount});
            ("transfer".into(), v.clone(), v)
        }
        Body::Txn(TxnBody::ReadAll(balances)) => {
            let read: serde_json::Map<String, Value> = balances
                .iter()
                .enumerate()
                .map(|(id, b)| (id.to_string(), json!(b)))
                .collect();
            ("read".into(), Value::Null, Value::Object(read))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_histories_have_elle_micro_ops_in_time_order() {
        let entries = vec![
            Entry {
                process: json!(1),
                begin_ns: 10,
                end_ns: 50,
                status: Status::Committed,
                body: Body::Txn(TxnBody::Append(vec![
                    Op::Append { key: 2, value: 7 },
                    Op::Read {
                        key: 2,
                        list: vec![7],
                    },
                ])),
                error: None,
            },
            Entry {
                process: json!(0),
                begin_ns: 20,
                end_ns: 30,
                status: Status::Unknown,
                body: Body::Txn(TxnBody::Append(vec![Op::Append { key: 1, value: 8 }])),
                error: Some("connection closed".into()),
            },
        ];
        let h = to_json(&entries);
        let types: Vec<&str> = h
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["invoke", "invoke", "info", "ok"]);
        assert_eq!(h[0]["value"], json!([["append", 2, 7], ["r", 2, null]]));
        assert_eq!(h[3]["value"], json!([["append", 2, 7], ["r", 2, [7]]]));
        assert_eq!(h[3]["index"], json!(3));
        assert_eq!(h[2]["error"], json!("connection closed"));
    }
}
