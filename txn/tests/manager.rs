//! Transaction manager behaviour over the in-memory engine: visibility, isolation,
//! wound-wait, validation, and termination under contention.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use kv::keys::protocol_span;
use kv::{Engine, MemoryEngine, Store, WriteBatch};
use txn::{Error, SystemClock, TxnManager};

/// A single-DC manager; its driver task only logs figures, so it is not run.
fn manager_on(engine: Arc<MemoryEngine>) -> Arc<TxnManager> {
    let store = Arc::new(Store::open(engine).unwrap());
    TxnManager::start_single(store, Arc::new(SystemClock))
        .unwrap()
        .0
}

fn manager() -> Arc<TxnManager> {
    manager_on(Arc::new(MemoryEngine::new()))
}

fn int(v: Option<Vec<u8>>) -> i64 {
    v.map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap()))
}

#[tokio::test]
async fn commits_are_visible_to_later_transactions_only() {
    let m = manager();
    let reader = m.begin();
    let t = m.begin();
    t.put(b"k", Some(b"v".to_vec())).await.unwrap();
    assert_eq!(
        t.get(b"k").unwrap(),
        Some(b"v".to_vec()),
        "read your own writes"
    );
    let version = t
        .commit()
        .await
        .unwrap()
        .expect("a write commits at a version");
    assert!(version > reader.read_version());
    assert_eq!(
        reader.get(b"k").unwrap(),
        None,
        "older snapshot does not see it"
    );
    assert_eq!(m.begin().get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[tokio::test]
async fn rollback_discards_writes_and_releases_locks() {
    let m = manager();
    let t = m.begin();
    t.put(b"k", Some(b"v".to_vec())).await.unwrap();
    t.rollback();
    assert_eq!(m.locked_keys(), 0);
    assert_eq!(m.begin().get(b"k").unwrap(), None);
}

#[tokio::test]
async fn older_transaction_wounds_younger_lock_holder() {
    let m = manager();
    let older = m.begin();
    let younger = m.begin();
    younger.put(b"k", Some(b"young".to_vec())).await.unwrap();
    older.put(b"k", Some(b"old".to_vec())).await.unwrap();
    assert!(matches!(younger.check_active(), Err(Error::Wounded)));
    assert!(matches!(younger.commit().await, Err(Error::Wounded)));
    older.commit().await.unwrap();
    assert_eq!(m.begin().get(b"k").unwrap(), Some(b"old".to_vec()));
}

#[tokio::test]
async fn younger_transaction_waits_for_older_holder() {
    let m = manager();
    let older = Arc::new(m.begin());
    let younger = Arc::new(m.begin());
    older
        .put(b"k", Some(1i64.to_be_bytes().to_vec()))
        .await
        .unwrap();
    let y = younger.clone();
    let waiter = tokio::spawn(async move { y.get_for_update(b"k").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "younger must wait");
    older.commit().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(int(seen), 1, "the waiter reads the committed value");
}

#[tokio::test]
async fn phantom_in_scanned_range_fails_validation() {
    let m = manager();
    let t1 = m.begin();
    let chunk = t1.scan(b"a", Some(b"z"), 100).unwrap();
    assert!(chunk.rows.is_empty());
    let t2 = m.begin();
    t2.put(b"m", Some(b"x".to_vec())).await.unwrap();
    t2.commit().await.unwrap();
    t1.put(b"out", Some(b"y".to_vec())).await.unwrap();
    assert!(matches!(t1.commit().await, Err(Error::Conflict)));
}

#[tokio::test]
async fn read_only_snapshot_transactions_never_conflict() {
    let m = manager();
    let t1 = m.begin();
    assert!(t1.scan(b"a", Some(b"z"), 100).unwrap().rows.is_empty());
    let t2 = m.begin();
    t2.put(b"m", Some(b"x".to_vec())).await.unwrap();
    t2.commit().await.unwrap();
    assert_eq!(t1.commit().await.unwrap(), None);
}

#[tokio::test]
async fn scan_merges_own_writes_and_resumes() {
    let m = manager();
    let t = m.begin();
    for i in 0..10u8 {
        t.put(&[b'k', i], Some(vec![i])).await.unwrap();
    }
    t.commit().await.unwrap();
    let t = m.begin();
    t.put(&[b'k', 3], None).await.unwrap();
    t.put(&[b'k', 20], Some(vec![20])).await.unwrap();
    let mut seen = Vec::new();
    let mut from = b"k".to_vec();
    loop {
        let chunk = t.scan(&from, Some(b"l"), 3).unwrap();
        assert!(chunk.rows.len() <= 3);
        seen.extend(chunk.rows.into_iter().map(|(k, _)| k[1]));
        match chunk.resume {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(seen, vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 20]);
}

/// Many transactions increment random hot keys in random order; with wound-wait every one
/// of them finishes (commit or 40001) and the total equals the committed increments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_under_contention_terminate_and_stay_consistent() {
    let m = manager();
    let keys: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'h', i]).collect();
    let mut tasks = Vec::new();
    for worker in 0..16u64 {
        let m = m.clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut seed = worker * 7919 + 1;
            let mut committed = 0i64;
            let mut retries = 0u64;
            for _ in 0..40 {
                loop {
                    let t = m.begin();
                    let mut ok = true;
                    for _ in 0..3 {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let key = &keys[(seed >> 33) as usize % keys.len()];
                        let step = async {
                            let v = int(t.get_for_update(key).await?);
                            t.put(key, Some((v + 1).to_be_bytes().to_vec())).await
                        };
                        if let Err(e) = step.await {
                            assert!(e.is_retryable(), "unexpected error {e}");
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        match t.commit().await {
                            Ok(_) => {
                                committed += 3;
                                break;
                            }
                            Err(e) => assert!(e.is_retryable(), "unexpected error {e}"),
                        }
                    } else {
                        t.rollback();
                    }
                    retries += 1;
                }
            }
            (committed, retries)
        }));
    }
    let mut total = 0;
    for task in tasks {
        let (committed, _) = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("no deadlock: every worker finishes")
            .unwrap();
        total += committed;
    }
    let t = m.begin();
    let sum: i64 = keys.iter().map(|k| int(t.get(k).unwrap())).sum();
    assert_eq!(
        sum, total,
        "every committed increment is present exactly once"
    );
    assert_eq!(total, 16 * 40 * 3);
    assert_eq!(m.locked_keys(), 0);
}

#[tokio::test]
async fn a_single_dc_retires_every_commit_at_once() {
    let engine = Arc::new(MemoryEngine::new());
    let m = manager_on(engine.clone());
    for i in 0..200u64 {
        let t = m.begin();
        let key = format!("k{i}");
        t.get(key.as_bytes()).unwrap();
        t.put(key.as_bytes(), Some(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
        t.commit().await.unwrap().expect("committed");
    }
    // Nothing of the 200 attempts is held in memory or on disk: the protocol keeps
    // its clock, floor and retired prefix, two entries; the committed index holds at
    // most what the last commit read and wrote (no snapshot is live below it).
    let gauges = m.driver().gauges();
    assert_eq!(gauges.attempts, 0);
    assert!(gauges.committed_index <= 2, "{gauges:?}");
    let (start, end) = protocol_span();
    let entries = engine.scan(&start, Some(&end), usize::MAX).unwrap();
    assert_eq!(entries.len(), 2, "{entries:02x?}");
}

#[tokio::test]
async fn a_reopened_node_sees_every_commit_and_issues_later_versions() {
    let engine = Arc::new(MemoryEngine::new());
    let m = manager_on(engine.clone());
    let t = m.begin();
    t.put(b"k", Some(b"v".to_vec())).await.unwrap();
    let first = t.commit().await.unwrap().unwrap();
    drop(m);
    let m = manager_on(engine);
    let t = m.begin();
    assert!(
        t.read_version() >= first,
        "the snapshot holds the earlier commit"
    );
    assert_eq!(t.get(b"k").unwrap(), Some(b"v".to_vec()));
    t.put(b"k", Some(b"w".to_vec())).await.unwrap();
    assert!(t.commit().await.unwrap().unwrap() > first);
}

/// Old versions are collected by the driver's background task, but never one a live
/// snapshot still reads.
#[tokio::test]
async fn old_versions_are_collected_below_the_oldest_live_snapshot() {
    let engine = Arc::new(MemoryEngine::new());
    let store = Arc::new(Store::open(engine.clone()).unwrap());
    let (m, task) = TxnManager::start_single(store, Arc::new(SystemClock)).unwrap();
    let settings = txn::GcSettings {
        ttl: Duration::ZERO,
        period: Duration::from_millis(20),
    };
    let task = tokio::spawn(task.with_gc(settings).run(None));
    let write = |v: i64| {
        let m = m.clone();
        async move {
            let t = m.begin();
            t.put(b"k", Some(v.to_be_bytes().to_vec())).await.unwrap();
            t.commit().await.unwrap().unwrap();
        }
    };
    let versions = || {
        let (start, end) = kv::keys::version_span();
        engine.scan(&start, Some(&end), usize::MAX).unwrap().len()
    };
    for v in 1..=5 {
        write(v).await;
    }
    let reader = m.begin();
    assert_eq!(int(reader.get(b"k").unwrap()), 5);
    for v in 6..=20 {
        write(v).await;
    }
    let mut waited = 0;
    while versions() > 16 && waited < 250 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(
        versions(),
        16,
        "versions 1-4 collected, 5 kept for the reader"
    );
    assert_eq!(
        int(reader.get(b"k").unwrap()),
        5,
        "the live snapshot still reads"
    );
    reader.rollback();
    write(21).await;
    while versions() > 1 && waited < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(versions(), 1, "only the newest version is left");
    assert_eq!(int(m.begin().get(b"k").unwrap()), 21);
    task.abort();
}

/// A disk whose synced writes fail once `broken` is set (fdatasync returning EIO).
#[derive(Default)]
struct FailingDisk {
    inner: MemoryEngine,
    broken: AtomicBool,
}

impl Engine for FailingDisk {
    fn get(&self, key: &[u8]) -> kv::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> kv::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(start, end, limit)
    }

    fn write(&self, batch: &WriteBatch, sync: bool) -> kv::Result<()> {
        if sync && self.broken.load(Ordering::Acquire) {
            return Err(kv::Error::Io("fdatasync: EIO".into()));
        }
        self.inner.write(batch, sync)
    }

    fn export(&self, start: &[u8], end: &[u8], sink: &mut kv::ExportSink<'_>) -> kv::Result<()> {
        self.inner.export(start, end, sink)
    }
}

#[tokio::test]
async fn a_failed_sync_stops_the_driver() {
    let disk = Arc::new(FailingDisk::default());
    let store = Arc::new(Store::open(disk.clone()).unwrap());
    let (m, task) = TxnManager::start_single(store, Arc::new(SystemClock)).unwrap();
    let task = tokio::spawn(task.run(None));
    let t = m.begin();
    t.put(b"k", Some(b"v".to_vec())).await.unwrap();
    t.commit()
        .await
        .unwrap()
        .expect("committed before the disk broke");
    disk.broken.store(true, Ordering::Release);
    let t = m.begin();
    t.put(b"k", Some(b"w".to_vec())).await.unwrap();
    assert!(matches!(t.commit().await, Err(Error::Storage(_))));
    let stopped = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the driver task ends")
        .unwrap();
    assert!(stopped.is_err(), "the node stops with an error");
    let t = m.begin();
    t.put(b"k", Some(b"x".to_vec())).await.unwrap();
    assert!(
        matches!(t.commit().await, Err(Error::OutcomeUnknown)),
        "later commits are refused"
    );
    assert_eq!(m.locked_keys(), 0, "every lock was released");
}

/// A cluster view whose clock check refuses while `refuse` is set.
struct OffClock {
    refuse: AtomicBool,
}

impl txn::ClusterView for OffClock {
    fn data_centers(&self) -> Vec<txn::DcStatus> {
        Vec::new()
    }

    fn commit_refusal(&self) -> Option<String> {
        self.refuse
            .load(Ordering::Acquire)
            .then(|| "this node's clock is off".to_string())
    }
}

/// While the node's clock is off its peers', it neither coordinates commits nor serves
/// fresh reads (a fresh point from a clock behind could miss an acknowledged commit);
/// snapshot work that commits nothing is unaffected.
#[tokio::test]
async fn a_node_whose_clock_is_off_serves_no_fresh_reads_and_commits_nothing() {
    let store = Arc::new(Store::open(Arc::new(MemoryEngine::new())).unwrap());
    let view = Arc::new(OffClock {
        refuse: AtomicBool::new(true),
    });
    let clock = Arc::new(SystemClock);
    let (handle, _task) = txn::driver::open(
        replication::Config::single(),
        store.clone(),
        clock.clone(),
        None,
        Some(view.clone()),
    )
    .unwrap();
    let m = TxnManager::new(store, clock, handle);
    assert!(matches!(m.begin_fresh().await, Err(Error::ClockOffset(_))));
    let t = m.begin();
    t.put(b"k", Some(b"v".to_vec())).await.unwrap();
    assert!(matches!(t.commit().await, Err(Error::ClockOffset(_))));
    view.refuse.store(false, Ordering::Release);
    let t = m.begin_fresh().await.expect("clocks agree again");
    t.put(b"k", Some(b"v".to_vec())).await.unwrap();
    assert!(t.commit().await.unwrap().is_some());
}
