//! MVCC tests, each run against both the memory and the RocksDB engine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::gc::GcCursor;
use super::*;
use crate::memory::MemoryEngine;
use crate::rocks::{RocksEngine, RocksOptions};

/// Runs `check` against a fresh memory engine and a fresh RocksDB engine.
fn on_each_engine(check: impl Fn(Arc<dyn Engine>)) {
    check(Arc::new(MemoryEngine::new()));
    let dir = tempfile::tempdir().unwrap();
    check(Arc::new(
        RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap(),
    ));
}

fn commit(
    mvcc: &MvccStore,
    engine: &dyn Engine,
    version: Version,
    writes: &[(&[u8], Option<&[u8]>)],
) {
    let writes: Vec<_> = writes
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    engine
        .write(&mvcc.batch_for(version, &writes), false)
        .unwrap();
}

fn keys_of(rows: &[Row]) -> Vec<&[u8]> {
    rows.iter().map(|(k, _, _)| k.as_slice()).collect()
}

fn committed(version: Version, value: Option<&[u8]>) -> Option<Versioned> {
    Some(Versioned {
        version,
        value: value.map(<[u8]>::to_vec),
    })
}

#[test]
fn get_sees_newest_version_at_or_before() {
    on_each_engine(|engine| {
        let mvcc = MvccStore::new(engine.clone());
        commit(&mvcc, &*engine, 1, &[(b"k", Some(b"a"))]);
        commit(&mvcc, &*engine, 3, &[(b"k", Some(b"b"))]);
        commit(&mvcc, &*engine, 5, &[(b"k", None)]);
        commit(&mvcc, &*engine, 7, &[(b"k", Some(b"c"))]);

        assert_eq!(mvcc.get(b"k", 0).unwrap(), None);
        assert_eq!(mvcc.get(b"k", 1).unwrap(), committed(1, Some(b"a")));
        assert_eq!(mvcc.get(b"k", 2).unwrap(), committed(1, Some(b"a")));
        assert_eq!(mvcc.get(b"k", 4).unwrap(), committed(3, Some(b"b")));
        assert_eq!(mvcc.get(b"k", 5).unwrap(), committed(5, None));
        assert_eq!(mvcc.get(b"k", 6).unwrap(), committed(5, None));
        assert_eq!(mvcc.get(b"k", 100).unwrap(), committed(7, Some(b"c")));
        assert_eq!(mvcc.latest(b"k").unwrap(), committed(7, Some(b"c")));
        assert_eq!(mvcc.get(b"other", 100).unwrap(), None);
        assert_eq!(mvcc.latest(b"other").unwrap(), None);
        assert_eq!(mvcc.last_committed_version().unwrap(), 7);
    });
}

#[test]
fn empty_store_has_version_zero() {
    on_each_engine(|engine| {
        let mvcc = MvccStore::new(engine);
        assert_eq!(mvcc.last_committed_version().unwrap(), 0);
        assert!(mvcc.scan(b"", None, Version::MAX, 10).unwrap().is_empty());
    });
}

#[test]
fn tombstones_hide_rows_in_scan() {
    on_each_engine(|engine| {
        let mvcc = MvccStore::new(engine.clone());
        commit(
            &mvcc,
            &*engine,
            1,
            &[(b"a", Some(b"1")), (b"b", Some(b"1")), (b"c", Some(b"1"))],
        );
        commit(&mvcc, &*engine, 2, &[(b"b", None)]);
        commit(&mvcc, &*engine, 3, &[(b"b", Some(b"3")), (b"c", None)]);

        let at = |v| mvcc.scan(b"", None, v, 100).unwrap();
        assert!(at(0).is_empty());
        assert_eq!(keys_of(&at(1)), [b"a", b"b", b"c"]);
        assert_eq!(keys_of(&at(2)), [b"a", b"c"]);
        assert_eq!(
            at(3),
            vec![
                (b"a".to_vec(), 1, b"1".to_vec()),
                (b"b".to_vec(), 3, b"3".to_vec())
            ]
        );
    });
}

#[test]
fn scan_respects_bounds_and_prefix_keys() {
    on_each_engine(|engine| {
        let mvcc = MvccStore::new(engine.clone());
        let keys: [&[u8]; 7] = [b"", b"a", b"a\x00", b"a\x00\x00", b"ab", b"b", b"\xff\xff"];
        for (i, key) in keys.iter().enumerate() {
            commit(&mvcc, &*engine, 1 + i as Version, &[(*key, Some(*key))]);
        }
        let all = mvcc.scan(b"", None, 100, 100).unwrap();
        assert_eq!(keys_of(&all), keys);
        assert!(all.iter().all(|(k, _, v)| k == v));

        assert_eq!(
            keys_of(&mvcc.scan(b"a", Some(b"ab"), 100, 100).unwrap()),
            [&b"a"[..], b"a\x00", b"a\x00\x00"]
        );
        assert_eq!(
            keys_of(&mvcc.scan(b"a\x00", Some(b"b"), 100, 100).unwrap()),
            [&b"a\x00"[..], b"a\x00\x00", b"ab"]
        );
        assert!(mvcc.scan(b"b", Some(b"b"), 100, 100).unwrap().is_empty());
        assert!(mvcc.scan(b"c", Some(b"b"), 100, 100).unwrap().is_empty());
        assert_eq!(mvcc.get(b"a", 100).unwrap(), committed(2, Some(b"a")));
        assert_eq!(
            mvcc.get(b"a\x00", 2).unwrap(),
            None,
            "a's versions are not a\\0's"
        );
    });
}

#[test]
fn scan_pages_resume_after_last_key() {
    on_each_engine(|engine| {
        let mvcc = MvccStore::new(engine.clone());
        for version in 1..=6u64 {
            let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..40u64)
                .filter(|i| i % version == 0)
                .map(|i| {
                    let value =
                        (i % 3 != 0 || version % 2 == 0).then(|| version.to_be_bytes().to_vec());
                    (format!("key{i:02}").into_bytes(), value)
                })
                .collect();
            engine
                .write(&mvcc.batch_for(version, &writes), false)
                .unwrap();
        }
        for at in [2, 5, 6] {
            let full = mvcc.scan(b"", None, at, usize::MAX).unwrap();
            assert!(!full.is_empty());
            for page_len in [1, 3, 7] {
                let mut pages = Vec::new();
                let mut start = Vec::new();
                loop {
                    let page = mvcc.scan(&start, None, at, page_len).unwrap();
                    assert!(page.len() <= page_len);
                    let Some((last, _, _)) = page.last() else {
                        break;
                    };
                    start = last.clone();
                    start.push(0x00);
                    pages.extend(page);
                }
                assert_eq!(pages, full, "at {at}, pages of {page_len}");
            }
        }
    });
}

/// Counts the raw entries the MVCC layer pulls from the engine.
struct CountingEngine {
    inner: MemoryEngine,
    entries_read: AtomicUsize,
}

impl Engine for CountingEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = self.inner.scan(start, end, limit)?;
        self.entries_read.fetch_add(rows.len(), Ordering::Relaxed);
        Ok(rows)
    }

    fn write(&self, batch: &WriteBatch, sync: bool) -> Result<()> {
        self.inner.write(batch, sync)
    }

    fn export(&self, start: &[u8], end: &[u8], sink: &mut crate::ExportSink<'_>) -> Result<()> {
        self.inner.export(start, end, sink)
    }
}

#[test]
fn scan_skips_long_version_runs() {
    let engine = Arc::new(CountingEngine {
        inner: MemoryEngine::new(),
        entries_read: AtomicUsize::new(0),
    });
    let mvcc = MvccStore::new(engine.clone());
    for version in 1..=2000 {
        commit(
            &mvcc,
            &*engine,
            version,
            &[(b"hot", Some(&version.to_be_bytes()))],
        );
    }
    commit(
        &mvcc,
        &*engine,
        2001,
        &[(b"cold", Some(b"c")), (b"zzz", Some(b"z"))],
    );

    for (at, hot_version) in [(Version::MAX, 2000), (1000, 1000), (1, 1)] {
        engine.entries_read.store(0, Ordering::Relaxed);
        let rows = mvcc.scan(b"", None, at, 100).unwrap();
        let expected: Vec<&[u8]> = if at > 2000 {
            vec![b"cold", b"hot", b"zzz"]
        } else {
            vec![b"hot"]
        };
        assert_eq!(keys_of(&rows), expected);
        let hot = rows.iter().find(|(k, _, _)| k == b"hot").unwrap();
        assert_eq!(hot.1, hot_version);
        let read = engine.entries_read.load(Ordering::Relaxed);
        assert!(
            read < 100,
            "read {read} raw entries for 2000 versions at {at}"
        );
    }
}

/// Model of the store: user key -> versions (ascending) with value or tombstone.
type History = BTreeMap<Vec<u8>, Vec<(Version, Option<Vec<u8>>)>>;

#[test]
fn scan_matches_a_model_under_random_history() {
    on_each_engine(|engine| {
        let mvcc = MvccStore::new(engine.clone());
        let mut model = History::new();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for version in 1..=300u64 {
            let mut writes = BTreeMap::new();
            for _ in 0..=rand(3) {
                let key: Vec<u8> = (0..rand(3))
                    .map(|_| [0x00, b'a', 0xFF][rand(3) as usize])
                    .collect();
                let value = (rand(4) != 0).then(|| version.to_be_bytes().to_vec());
                writes.insert(key, value);
            }
            for (key, value) in &writes {
                model
                    .entry(key.clone())
                    .or_default()
                    .push((version, value.clone()));
            }
            let writes: Vec<_> = writes.into_iter().collect();
            engine
                .write(&mvcc.batch_for(version, &writes), false)
                .unwrap();
        }
        for at in [0, 1, 17, 150, 299, 300, Version::MAX] {
            let expected: Vec<Row> = model
                .iter()
                .filter_map(|(key, versions)| {
                    let (version, value) = versions.iter().rev().find(|(v, _)| *v <= at)?;
                    Some((key.clone(), *version, value.clone()?))
                })
                .collect();
            assert_eq!(
                mvcc.scan(b"", None, at, usize::MAX).unwrap(),
                expected,
                "at {at}"
            );
            for (key, versions) in &model {
                let want = versions
                    .iter()
                    .rev()
                    .find(|(v, _)| *v <= at)
                    .map(|(v, value)| Versioned {
                        version: *v,
                        value: value.clone(),
                    });
                assert_eq!(mvcc.get(key, at).unwrap(), want);
            }
        }
    });
}

#[test]
fn last_committed_version_survives_rocks_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine: Arc<dyn Engine> =
            Arc::new(RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap());
        let mvcc = MvccStore::new(engine.clone());
        let batch = mvcc.batch_for(42, &[(b"k".to_vec(), Some(b"v".to_vec()))]);
        engine.write(&batch, true).unwrap();
    }
    let engine: Arc<dyn Engine> =
        Arc::new(RocksEngine::open(dir.path(), &RocksOptions::default()).unwrap());
    let mvcc = MvccStore::new(engine);
    assert_eq!(mvcc.last_committed_version().unwrap(), 42);
    assert_eq!(mvcc.latest(b"k").unwrap(), committed(42, Some(b"v")));
}

#[test]
#[should_panic(expected = "version 0")]
fn version_zero_is_never_written() {
    MvccStore::new(Arc::new(MemoryEngine::new())).batch_for(0, &[]);
}

#[test]
fn corrupt_values_are_reported() {
    let engine = Arc::new(MemoryEngine::new());
    let mut batch = WriteBatch::new();
    batch.put(Key::Version(b"k", 1).encode(), vec![0x07]);
    engine.write(&batch, false).unwrap();
    let mvcc = MvccStore::new(engine);
    assert!(matches!(mvcc.get(b"k", 1), Err(Error::Corruption(_))));
    assert!(matches!(
        mvcc.scan(b"", None, 1, 10),
        Err(Error::Corruption(_))
    ));
}

/// Collection keeps, per key, every version above the horizon and the newest at or
/// below it unless that is a tombstone; reads at or above the horizon see the same
/// rows before and after, across passes that stop in the middle of a run.
#[test]
fn garbage_collection_keeps_what_reads_at_or_above_the_horizon_see() {
    on_each_engine(|engine| {
        let mvcc = MvccStore::new(engine.clone());
        commit(
            &mvcc,
            &*engine,
            1,
            &[(b"a", Some(b"a1")), (b"b", Some(b"b1"))],
        );
        commit(&mvcc, &*engine, 2, &[(b"a", Some(b"a2"))]);
        commit(&mvcc, &*engine, 3, &[(b"a", Some(b"a3")), (b"b", None)]);
        commit(
            &mvcc,
            &*engine,
            5,
            &[(b"a", Some(b"a5")), (b"c", Some(b"c5"))],
        );
        let horizon = 4;
        let before: Vec<Vec<Row>> = (horizon..=6)
            .map(|at| mvcc.scan(b"", None, at, 100).unwrap())
            .collect();
        let mut cursor = GcCursor::default();
        let mut removed = 0;
        loop {
            let pass = mvcc.collect_garbage(&mut cursor, horizon, 2).unwrap();
            assert!(pass.examined <= 2);
            removed += pass.removed;
            if pass.wrapped {
                break;
            }
        }
        // a1, a2, b1 and b's tombstone at 3.
        assert_eq!(removed, 4);
        let after: Vec<Vec<Row>> = (horizon..=6)
            .map(|at| mvcc.scan(b"", None, at, 100).unwrap())
            .collect();
        assert_eq!(before, after);
        let (start, end) = keys::version_span();
        let left = engine.scan(&start, Some(&end), 100).unwrap().len();
        assert_eq!(left, 3, "a3, a5 and c5 remain");
        // A second round finds nothing more.
        let pass = mvcc
            .collect_garbage(&mut GcCursor::default(), horizon, 100)
            .unwrap();
        assert_eq!((pass.removed, pass.wrapped), (0, true));
    });
}
