//! The two workloads, as a client runs them over the Postgres wire.
//!
//! - **append**: lists of integers stored as text (`lists(k int PRIMARY KEY, v text)`,
//!   `v = ',3,17,…'`, a row created by its first append with an upsert); a transaction is
//!   1–3 reads or appends of keys drawn from [`LIST_KEYS`] active ones in one
//!   `BEGIN … COMMIT` block. As in Jepsen, a key takes at most [`APPENDS_PER_KEY`]
//!   appends and is then replaced by a fresh one, so lists stay short. Every appended
//!   element is unique in the run, so the reads say exactly which appends they saw, and
//!   the Elle-style checker (`crate::elle`) finds any dependency cycle.
//! - **bank**: `accounts(id int PRIMARY KEY, bal bigint)`, every balance 100 at the start;
//!   a transfer reads two balances and moves an amount if the source covers it; one
//!   transaction in five reads every balance, whose total must always be the initial
//!   total and no balance negative.
//!
//! Outcomes as the client saw them: COMMIT answered OK → committed; any error before
//! COMMIT, or a serialization failure (40001) at COMMIT → aborted (the server rolls a
//! broken block back); anything else at COMMIT (connection lost, 40003) → unknown.

use std::collections::HashMap;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::Rng;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::elle::{Op, Status};

/// Active keys of the append workload; few, so transactions conflict.
pub const LIST_KEYS: usize = 10;
/// Appends a key takes before it is retired.
pub const APPENDS_PER_KEY: u32 = 64;
/// Accounts of the bank workload.
pub const ACCOUNTS: i32 = 8;
pub const INITIAL_BALANCE: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Append,
    Bank,
}

/// What one transaction did, as the history records it.
#[derive(Clone, Debug)]
pub enum TxnBody {
    /// List-append operations (reads filled in with what was read).
    Append(Vec<Op>),
    /// Move `amount` from `from` to `to` (`moved`: whether the source covered it).
    Transfer {
        from: i32,
        to: i32,
        amount: i64,
        moved: bool,
    },
    /// Every balance, in id order (empty until read).
    ReadAll(Vec<i64>),
}

/// The append workload's keys: [`LIST_KEYS`] active ones, each retired after
/// [`APPENDS_PER_KEY`] appends, shared by every client.
pub struct KeyPool {
    inner: Mutex<Pool>,
}

struct Pool {
    active: Vec<u64>,
    appends: HashMap<u64, u32>,
    next: u64,
}

impl Default for KeyPool {
    fn default() -> KeyPool {
        KeyPool {
            inner: Mutex::new(Pool {
                active: (0..LIST_KEYS as u64).collect(),
                appends: HashMap::new(),
                next: LIST_KEYS as u64,
            }),
        }
    }
}

impl KeyPool {
    /// An active key; for an append, counted (and retired once full).
    fn pick(&self, rng: &mut StdRng, append: bool) -> u64 {
        let mut pool = self.inner.lock();
        let slot = rng.random_range(0..pool.active.len());
        let key = pool.active[slot];
        if append {
            let n = pool.appends.entry(key).or_insert(0);
            *n += 1;
            if *n >= APPENDS_PER_KEY {
                pool.appends.remove(&key);
                pool.active[slot] = pool.next;
                pool.next += 1;
            }
        }
        key
    }
}

pub fn schema(workload: Workload) -> String {
    match workload {
        Workload::Append => "CREATE TABLE lists (k int PRIMARY KEY, v text NOT NULL);".into(),
        Workload::Bank => {
            let rows: Vec<String> = (0..ACCOUNTS)
                .map(|id| format!("({id}, {INITIAL_BALANCE})"))
                .collect();
            format!(
                "CREATE TABLE accounts (id int PRIMARY KEY, bal bigint NOT NULL); \
                 INSERT INTO accounts VALUES {};",
                rows.join(", ")
            )
        }
    }
}

/// A new transaction; `next_element` hands out unique list elements.
pub fn generate(
    workload: Workload,
    rng: &mut StdRng,
    keys: &KeyPool,
    next_element: &mut dyn FnMut() -> u64,
) -> TxnBody {
    match workload {
        Workload::Append => {
            let n = rng.random_range(1..=3);
            let ops = (0..n)
                .map(|_| {
                    if rng.random_bool(0.5) {
                        let key = keys.pick(rng, false);
                        Op::Read { key, list: vec![] }
                    } else {
                        Op::Append {
                            key: keys.pick(rng, true),
                            value: next_element(),
                        }
                    }
                })
                .collect();
            TxnBody::Append(ops)
        }
        Workload::Bank if rng.random_range(0..5) == 0 => TxnBody::ReadAll(vec![]),
        Workload::Bank => {
            let from = rng.random_range(0..ACCOUNTS);
            let mut to = rng.random_range(0..ACCOUNTS - 1);
            if to >= from {
                to += 1;
            }
            TxnBody::Transfer {
                from,
                to,
                amount: rng.random_range(1..=20),
                moved: false,
            }
        }
    }
}

/// Runs `body` in one transaction block; returns the outcome and a description of a
/// failure.
pub async fn execute(client: &Client, body: &mut TxnBody) -> (Status, Option<String>) {
    if let Err(e) = client.batch_execute("BEGIN").await {
        return (Status::Aborted, Some(describe(&e)));
    }
    if let Err(e) = statements(client, body).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return (Status::Aborted, Some(describe(&e)));
    }
    match client.batch_execute("COMMIT").await {
        Ok(()) => (Status::Committed, None),
        Err(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) => {
            (Status::Aborted, Some(describe(&e)))
        }
        Err(e) => (Status::Unknown, Some(describe(&e))),
    }
}

async fn statements(client: &Client, body: &mut TxnBody) -> Result<(), tokio_postgres::Error> {
    match body {
        TxnBody::Append(ops) => {
            for op in ops {
                match op {
                    Op::Read { key, list } => {
                        let row = client
                            .query_opt("SELECT v FROM lists WHERE k = $1", &[&(*key as i32)])
                            .await?;
                        *list = row.map_or_else(Vec::new, |r| parse_list(r.get(0)));
                    }
                    Op::Append { key, value } => {
                        let (key, suffix) = (*key as i32, format!(",{value}"));
                        let params: [&(dyn ToSql + Sync); 2] = [&key, &suffix];
                        client
                            .execute(
                                "INSERT INTO lists VALUES ($1, $2) \
                                 ON CONFLICT (k) DO UPDATE SET v = lists.v || excluded.v",
                                &params,
                            )
                            .await?;
                    }
                }
            }
        }
        TxnBody::Transfer {
            from,
            to,
            amount,
            moved,
        } => {
            let (from, to, amount) = (*from, *to, *amount);
            let row = client
                .query_one("SELECT bal FROM accounts WHERE id = $1", &[&from])
                .await?;
            let balance: i64 = row.get(0);
            *moved = balance >= amount;
            if *moved {
                let debit: [&(dyn ToSql + Sync); 2] = [&from, &amount];
                client
                    .execute("UPDATE accounts SET bal = bal - $2 WHERE id = $1", &debit)
                    .await?;
                let credit: [&(dyn ToSql + Sync); 2] = [&to, &amount];
                client
                    .execute("UPDATE accounts SET bal = bal + $2 WHERE id = $1", &credit)
                    .await?;
            }
        }
        TxnBody::ReadAll(balances) => {
            let rows = client
                .query("SELECT bal FROM accounts ORDER BY id", &[])
                .await?;
            *balances = rows.iter().map(|r| r.get(0)).collect();
        }
    }
    Ok(())
}

/// `",3,17"` → `[3, 17]`.
pub fn parse_list(text: &str) -> Vec<u64> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Reads every list (append) or balance (bank) in one fresh autocommit query.
pub async fn final_state(
    client: &Client,
    workload: Workload,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let sql = match workload {
        Workload::Append => "SELECT k::text || ':' || v FROM lists ORDER BY k",
        Workload::Bank => "SELECT id::text || ':' || bal::text FROM accounts ORDER BY id",
    };
    let rows = client.query(sql, &[]).await?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Bank invariants over committed reads: every read totals the initial sum and has no
/// negative balance.
pub fn check_bank_read(balances: &[i64]) -> Option<String> {
    let total: i64 = balances.iter().sum();
    let expected = INITIAL_BALANCE * i64::from(ACCOUNTS);
    if balances.len() != ACCOUNTS as usize {
        return Some(format!("read {} accounts, not {ACCOUNTS}", balances.len()));
    }
    if total != expected {
        return Some(format!("total {total}, expected {expected}: {balances:?}"));
    }
    if let Some(b) = balances.iter().find(|b| **b < 0) {
        return Some(format!("negative balance {b}: {balances:?}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_bank_reads_are_checked() {
        assert_eq!(parse_list(""), Vec::<u64>::new());
        assert_eq!(parse_list(",3,17"), vec![3, 17]);
        let good = vec![INITIAL_BALANCE; ACCOUNTS as usize];
        assert_eq!(check_bank_read(&good), None);
        let mut lost = good.clone();
        lost[0] -= 5;
        assert!(check_bank_read(&lost).unwrap().contains("total"));
        let mut negative = good;
        negative[0] = -5;
        negative[1] += 5 + INITIAL_BALANCE;
        assert!(check_bank_read(&negative).unwrap().contains("negative"));
    }
}
