//! `meridian jepsen`: a Jepsen-style test of a real cluster over the Postgres wire.
//!
//! It starts a local cluster (one `meridian node` process per DC, WAN emulated, as
//! `meridian demo`), creates the workload's table, and runs closed-loop clients — each
//! with its own connection to a DC, moving to the next DC when its own is unreachable —
//! until the requested number of transactions has finished, while a nemesis
//! ([`nemesis`]) kills (`kill -9`, then restart), pauses (SIGSTOP/SIGCONT) or cuts off
//! (transport partition) one DC at a time. Then it heals everything, reads the final
//! state in every DC, and checks:
//! - every DC holds the same final state (every acknowledged commit everywhere);
//! - append: the Elle-style checker (`crate::elle`) over the history and the final lists
//!   (strict serializability: no G0/G1/G2 cycle, real time included, no lost append);
//! - bank: every committed read totals the initial sum with no negative balance, and so
//!   does the final state.
//!
//! The history goes to `<data-dir>/history.json` in Elle's JSON form ([`history`]),
//! unknown outcomes recorded as `info`. One JSON summary line is printed; the exit status
//! is non-zero on any anomaly. Faults are seeded (`--seed`), but a real run's timing is
//! not reproducible: the history is the record.

pub mod history;
pub mod nemesis;
pub mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use tokio_postgres::{Client, NoTls};

use self::history::{Body, Entry};
use self::nemesis::Fault;
use self::workload::{TxnBody, Workload};
use crate::cluster::demo::{topology, DemoConfig};
use crate::cluster::local::LocalCluster;
use crate::cluster::topology::Learn;
use crate::elle::{self, Status};

pub struct JepsenConfig {
    pub dcs: usize,
    pub wan_delay_ms: u64,
    pub workload: Workload,
    pub txns: u64,
    pub clients: usize,
    pub faults: Vec<Fault>,
    /// Time between the start of two nemesis actions.
    pub interval: Duration,
    pub data_dir: PathBuf,
    pub base_port: u16,
    pub seed: u64,
}

/// What the clients share.
struct Run {
    workload: Workload,
    txns: u64,
    started: AtomicU64,
    next_element: AtomicU64,
    keys: workload::KeyPool,
    epoch: Instant,
    entries: Mutex<Vec<Entry>>,
    urls: Vec<String>,
}

impl Run {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Runs the test; Ok(true) if no anomaly was found.
pub async fn run(cfg: JepsenConfig) -> anyhow::Result<bool> {
    if cfg.clients == 0 || cfg.txns == 0 {
        bail!("--clients and --txns must be positive");
    }
    if cfg.data_dir.join("cluster.toml").exists() {
        bail!(
            "{} holds an earlier run; give a new --data-dir",
            cfg.data_dir.display()
        );
    }
    let topology = topology(&DemoConfig {
        dcs: cfg.dcs,
        wan_delay_ms: cfg.wan_delay_ms,
        base_port: cfg.base_port,
        data_dir: cfg.data_dir.clone(),
        learn: Learn::Owner,
        evict_after_s: crate::cluster::topology::DEFAULT_EVICT_AFTER_S,
        max_history_records: crate::cluster::topology::DEFAULT_MAX_HISTORY_RECORDS,
    })?;
    let mut cluster = LocalCluster::create(topology, &cfg.data_dir)?;
    cluster.start_all()?;
    for dc in 0..cfg.dcs {
        cluster.wait_ready(dc, Duration::from_secs(60)).await?;
    }
    let urls: Vec<String> = cluster
        .topology
        .dcs
        .iter()
        .map(|d| format!("postgres://jepsen@{}/postgres?connect_timeout=2", d.sql))
        .collect();
    let setup = connect(&urls[0]).await.context("cannot connect to DC 0")?;
    setup
        .batch_execute(&workload::schema(cfg.workload))
        .await
        .context("cannot create the workload's table")?;
    drop(setup);

    let run = Arc::new(Run {
        workload: cfg.workload,
        txns: cfg.txns,
        started: AtomicU64::new(0),
        next_element: AtomicU64::new(1),
        keys: workload::KeyPool::default(),
        epoch: Instant::now(),
        entries: Mutex::new(Vec::new()),
        urls,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));
    let nemesis = tokio::spawn(nemesis::run(
        cluster.clone(),
        cfg.faults.clone(),
        cfg.interval,
        cfg.seed,
        stop.clone(),
        run.clone(),
    ));
    let clients: Vec<_> = (0..cfg.clients)
        .map(|c| {
            tokio::spawn(client(
                run.clone(),
                c,
                c % cfg.dcs,
                cfg.seed.wrapping_mul(1_000_003).wrapping_add(c as u64),
            ))
        })
        .collect();
    for c in clients {
        c.await.context("a client panicked")?;
    }
    stop.store(true, Ordering::Release);
    let events = nemesis.await.context("the nemesis panicked")??;
    let seconds = run.epoch.elapsed().as_secs_f64();

    // Every DC is up and connected again; its fresh reads must agree.
    let mut finals = Vec::new();
    for (dc, url) in run.urls.iter().enumerate() {
        finals.push(
            final_state(url, cfg.workload)
                .await
                .with_context(|| format!("cannot read the final state in DC {dc}"))?,
        );
    }
    let entries = std::mem::take(&mut *run.entries.lock());
    let mut anomalies: Vec<String> = Vec::new();
    for (dc, state) in finals.iter().enumerate().skip(1) {
        if *state != finals[0] {
            anomalies.push(format!(
                "DC {dc}'s final state differs from DC 0's: {state:?} vs {:?}",
                finals[0]
            ));
        }
    }
    match cfg.workload {
        Workload::Append => anomalies.extend(check_append(&entries, &finals[0])),
        Workload::Bank => anomalies.extend(check_bank(&entries, &finals[0])),
    }

    let history_path = cluster.lock().await.dir.join("history.json");
    std::fs::write(
        &history_path,
        serde_json::to_string(&history::to_json(&entries))?,
    )
    .with_context(|| format!("cannot write {}", history_path.display()))?;
    let count = |s: Status| {
        entries
            .iter()
            .filter(|e| matches!(e.body, Body::Txn(_)) && e.status == s)
            .count()
    };
    let committed = count(Status::Committed);
    println!(
        "{}",
        json!({
            "workload": format!("{:?}", cfg.workload).to_lowercase(),
            "dcs": cfg.dcs,
            "wan_delay_ms": cfg.wan_delay_ms,
            "txns": committed + count(Status::Aborted) + count(Status::Unknown),
            "committed": committed,
            "aborted": count(Status::Aborted),
            "unknown": count(Status::Unknown),
            "nemesis_events": events,
            "seconds": (seconds * 10.0).round() / 10.0,
            "commits_per_s": (committed as f64 / seconds).round(),
            "anomalies": anomalies.len(),
            "anomaly_details": anomalies.iter().take(10).collect::<Vec<_>>(),
            "history": history_path.display().to_string(),
        })
    );
    Ok(anomalies.is_empty())
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Reads the final state, retrying while the DC settles.
async fn final_state(url: &str, workload: Workload) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let client = connect(url).await?;
            workload::final_state(&client, workload).await
        };
        match attempt.await {
            Ok(state) => return Ok(state),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One closed-loop client: its own connection, to DC `dc` or the next reachable one.
async fn client(run: Arc<Run>, id: usize, mut dc: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conn: Option<Client> = None;
    let dcs = run.urls.len();
    while run.started.fetch_add(1, Ordering::AcqRel) < run.txns {
        while conn.as_ref().is_none_or(Client::is_closed) {
            match connect(&run.urls[dc]).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    dc = (dc + 1) % dcs;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let client = conn.as_ref().expect("connected");
        let mut body = workload::generate(run.workload, &mut rng, &run.keys, &mut || {
            run.next_element.fetch_add(1, Ordering::Relaxed)
        });
        let begin_ns = run.now_ns();
        let (status, error) = workload::execute(client, &mut body).await;
        let end_ns = run.now_ns();
        run.entries.lock().push(Entry {
            process: json!(id),
            begin_ns,
            end_ns,
            status,
            body: Body::Txn(body),
            error,
        });
    }
}

/// The Elle-style check over the committed and unknown transactions and the final lists.
fn check_append(entries: &[Entry], finals: &[String]) -> Vec<String> {
    let mut history = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let Body::Txn(TxnBody::Append(ops)) = &e.body {
            history.push(elle::TxnObs {
                id: i as u64,
                status: e.status,
                begin: e.begin_ns / 1_000,
                end: (e.status != Status::Unknown).then_some(e.end_ns / 1_000),
                ops: ops.clone(),
            });
        }
    }
    let mut final_lists = BTreeMap::new();
    for line in finals {
        if let Some((k, v)) = line.split_once(':') {
            if let Ok(k) = k.parse::<u64>() {
                final_lists.insert(k, workload::parse_list(v));
            }
        }
    }
    elle::check(&history, &final_lists)
        .into_iter()
        .map(|a| format!("{}: {}", a.kind, a.detail))
        .collect()
}

/// Bank invariants over every committed read and the final balances.
fn check_bank(entries: &[Entry], finals: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for e in entries {
        if let (Status::Committed, Body::Txn(TxnBody::ReadAll(balances))) = (e.status, &e.body) {
            if let Some(problem) = workload::check_bank_read(balances) {
                out.push(format!("read at {} ns: {problem}", e.begin_ns));
            }
        }
    }
    let balances: Vec<i64> = finals
        .iter()
        .filter_map(|l| l.split_once(':').and_then(|(_, b)| b.parse().ok()))
        .collect();
    if let Some(problem) = workload::check_bank_read(&balances) {
        out.push(format!("final state: {problem}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elle::Op;

    fn txn(id: usize, status: Status, begin: u64, end: u64, body: TxnBody) -> Entry {
        Entry {
            process: json!(id),
            begin_ns: begin,
            end_ns: end,
            status,
            body: Body::Txn(body),
            error: None,
        }
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_append_is_an_anomaly() {
        let append = TxnBody::Append(vec![Op::Append { key: 0, value: 1 }]);
        let stale = TxnBody::Append(vec![Op::Read {
            key: 0,
            list: vec![],
        }]);
        let fresh = TxnBody::Append(vec![Op::Read {
            key: 0,
            list: vec![1],
        }]);
        let finals = vec!["0:,1".to_string()];
        let ok = [
            txn(0, Status::Committed, 0, 10_000, append.clone()),
            txn(1, Status::Committed, 20_000, 30_000, fresh),
        ];
        assert!(check_append(&ok, &finals).is_empty());
        let bad = [
            txn(0, Status::Committed, 0, 10_000, append),
            txn(1, Status::Committed, 20_000, 30_000, stale),
        ];
        let found = check_append(&bad, &finals);
        assert!(found.iter().any(|a| a.contains("realtime")), "{found:?}");
    }

    #[test]
    fn bank_reads_and_final_state_are_checked() {
        let good = vec![workload::INITIAL_BALANCE; workload::ACCOUNTS as usize];
        let mut skewed = good.clone();
        skewed[0] += 1;
        let finals: Vec<String> = good
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i}:{b}"))
            .collect();
        let entries = [
            txn(0, Status::Committed, 0, 1, TxnBody::ReadAll(good.clone())),
            txn(1, Status::Aborted, 0, 1, TxnBody::ReadAll(skewed.clone())),
        ];
        assert!(
            check_bank(&entries, &finals).is_empty(),
            "an aborted read is no observation"
        );
        let entries = [txn(0, Status::Committed, 0, 1, TxnBody::ReadAll(skewed))];
        assert_eq!(check_bank(&entries, &finals).len(), 1);
        assert_eq!(check_bank(&[], &finals[1..]).len(), 1, "a missing account");
    }
}
