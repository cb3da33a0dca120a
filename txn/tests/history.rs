//! History scripts for the transaction manager (`txn/testdata/`): transactions named
//! T1, T2, … run operations one command at a time against a single-DC manager with a
//! hand-driven clock, and each line shows what the operation returned — or that it
//! waits for a lock, and later what it returned once it could go on. Rewrite with
//! `UPDATE_GOLDENFILES=1 cargo test --release --workspace -- histories::`.
//!
//! ```text
//! begin T                 a transaction (older than every later one)
//! get T k / scan T a b    snapshot reads
//! lock T k                get_for_update: locks k, reads its latest value
//! put T k v / delete T k  buffered writes, under an exclusive lock
//! commit T / rollback T
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv::{MemoryEngine, Store};
use tokio::task::JoinHandle;
use txn::{PhysicalClock, Txn, TxnManager};

test_each_file::test_each_path! { in "txn/testdata" as histories => run_script }

fn run_script(path: &Path) {
    goldenscript::run(&mut History::new(), path).expect("history script failed");
}

/// A clock that moves 1 ms per reading: versions are deterministic.
#[derive(Default)]
struct StepClock(AtomicU64);

impl PhysicalClock for StepClock {
    fn now_micros(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed) + 1_000
    }
}

struct History {
    rt: tokio::runtime::Runtime,
    manager: Arc<TxnManager>,
    txns: BTreeMap<String, Arc<Txn>>,
    /// Operations that wait for a lock: (transaction, what, task).
    waiting: Vec<(String, String, JoinHandle<String>)>,
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

impl History {
    fn new() -> History {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let store = Arc::new(Store::open(Arc::new(MemoryEngine::new())).expect("store"));
        let manager = {
            let _guard = rt.enter();
            TxnManager::start_single(store, Arc::new(StepClock::default()))
                .expect("manager")
                .0
        };
        History {
            rt,
            manager,
            txns: BTreeMap::new(),
            waiting: Vec::new(),
        }
    }

    /// Runs `op` for `name` until it finishes or waits for a lock.
    fn start(
        &mut self,
        name: &str,
        what: String,
        op: impl std::future::Future<Output = String> + Send + 'static,
        out: &mut String,
    ) -> Result<()> {
        let id = self.txn(name)?.id();
        let task = self.rt.spawn(op);
        match self.settle(task, id) {
            Ok(result) => writeln!(out, "{name} {what} → {result}")?,
            Err(task) => {
                writeln!(out, "{name} {what} waits")?;
                self.waiting.push((name.to_string(), what, task));
            }
        }
        Ok(())
    }

    /// Waits until `task` is done (its result) or transaction `id` waits for a lock.
    fn settle(
        &self,
        task: JoinHandle<String>,
        id: u64,
    ) -> std::result::Result<String, JoinHandle<String>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if task.is_finished() {
                return Ok(self.rt.block_on(task).expect("operation panicked"));
            }
            if self.manager.is_waiting(id) || Instant::now() > deadline {
                return Err(task);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Reports operations that stopped waiting.
    fn resume(&mut self, out: &mut String) -> Result<()> {
        for (name, what, task) in std::mem::take(&mut self.waiting) {
            let id = self.txn(&name)?.id();
            match self.settle(task, id) {
                Ok(result) => writeln!(out, "{name} {what} (waited) → {result}")?,
                Err(task) => self.waiting.push((name, what, task)),
            }
        }
        Ok(())
    }

    fn txn(&self, name: &str) -> Result<Arc<Txn>> {
        Ok(self
            .txns
            .get(name)
            .ok_or_else(|| format!("no transaction {name}"))?
            .clone())
    }
}

fn show(v: Option<Vec<u8>>) -> String {
    v.map_or("none".into(), |v| String::from_utf8_lossy(&v).into_owned())
}

fn show_version(v: u64) -> String {
    replication::ShowVersion(v).to_string()
}

impl goldenscript::Runner for History {
    fn run(&mut self, command: &goldenscript::Command) -> Result<String> {
        let mut args = command.consume_args();
        let name = args
            .next_pos()
            .ok_or("a transaction name is needed")?
            .value
            .clone();
        let pos: Vec<String> = args.rest_pos().iter().map(|a| a.value.clone()).collect();
        args.reject_rest()?;
        let arg = |i: usize| -> Result<String> {
            pos.get(i).cloned().ok_or_else(|| "missing argument".into())
        };
        let mut out = String::new();
        match command.name.as_str() {
            "begin" => {
                let txn = Arc::new(self.manager.begin());
                writeln!(
                    out,
                    "{name} begins: id {}, snapshot {}",
                    show_version(txn.id()),
                    show_version(txn.read_version())
                )?;
                self.txns.insert(name, txn);
            }
            "get" => {
                let key = arg(0)?;
                let result = self.txn(&name)?.get(key.as_bytes());
                let shown = result.map_or_else(|e| format!("error: {e}"), show);
                writeln!(out, "{name} get {key} → {shown}")?;
            }
            "scan" => {
                let (a, b) = (arg(0)?, arg(1)?);
                let result = self.txn(&name)?.scan(a.as_bytes(), Some(b.as_bytes()), 100);
                let shown = match result {
                    Ok(chunk) => chunk
                        .rows
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{}={}",
                                String::from_utf8_lossy(k),
                                String::from_utf8_lossy(v)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    Err(e) => format!("error: {e}"),
                };
                writeln!(out, "{name} scan {a}..{b} → [{shown}]")?;
            }
            "lock" | "put" | "delete" => {
                let key = arg(0)?;
                let value = match command.name.as_str() {
                    "put" => Some(arg(1)?.into_bytes()),
                    _ => None,
                };
                let txn = self.txn(&name)?;
                let kind = command.name.clone();
                let what = match &value {
                    Some(v) => format!("put {key}={}", String::from_utf8_lossy(v)),
                    None => format!("{kind} {key}"),
                };
                let op = async move {
                    let result = match kind.as_str() {
                        "lock" => txn.get_for_update(key.as_bytes()).await.map(show),
                        _ => txn.put(key.as_bytes(), value).await.map(|()| "ok".into()),
                    };
                    result.unwrap_or_else(|e| format!("error: {e}"))
                };
                self.start(&name, what, op, &mut out)?;
            }
            "commit" => {
                let txn = self.txn(&name)?;
                let op = async move {
                    match txn.commit().await {
                        Ok(Some(v)) => format!("committed at {}", show_version(v)),
                        Ok(None) => "committed (read-only)".into(),
                        Err(e) => format!("error: {e}"),
                    }
                };
                self.start(&name, "commit".into(), op, &mut out)?;
            }
            "rollback" => {
                self.txn(&name)?.rollback();
                writeln!(out, "{name} rolled back")?;
            }
            other => return Err(format!("unknown command {other}").into()),
        }
        self.resume(&mut out)?;
        Ok(out)
    }
}
