//! Admissibility: whether a data center may vote COMMIT on a record (docs/protocol.md
//! §5.4), and what it must wait for otherwise (§6.1).
//!
//! A record T (version s, read entries (span, lo), writes W) is checked against the
//! DC's committed state ([`CommittedIndex`]) and every transaction P prepared there
//! (voted COMMIT, outcome unknown; version p, reads R_P, writes W_P):
//!
//! | rule | fails when | result |
//! |---|---|---|
//! | C1 no hidden write | k ∈ W has a committed version ≥ s | ABORT |
//! | C2 no invalidated read | k ∈ W was read by a committed transaction at a version ≥ s | ABORT |
//! | C3 no stale read | a read span holds a committed version c with lo < c < s | ABORT |
//! | P1 write below a pending write | k ∈ W ∩ W_P and p > s | depends on P |
//! | P2 write under a pending read | k ∈ W ∩ R_P and p > s | depends on P |
//! | P3 read under a pending write | a read span of T holds k ∈ W_P with lo < p < s | depends on P |
//!
//! Dependencies become WAIT or ABORT by who checks ([`Checker`]): the origin, which has
//! not voted, waits for any prepared P (rule E0); a remote DC waits only if every P is
//! older than T and votes ABORT behind a younger one (E3) — so no wait cycle exists.
//! C0 (a record at or below the DC's vote floor F is voted ABORT, §7.6) is checked by the
//! caller before these rules.
//!
//! Pruning: every record checked here has a version above F (C0, and the origin issues
//! versions above its clock, which F trails). So [`CommittedIndex::prune`] at F keeps
//! the checks exact while the index stays bounded by the keyspace instead of the
//! history: C1 and C2 only ask about versions ≥ s > F, and C3 (a committed version in
//! (lo, s)) needs, below F, only each key's newest version — if any committed version
//! of k in (lo, F] exists, the newest one ≤ F is in (lo, s) too. Point reads at or
//! below F go as well (C2 asks only about reads at versions ≥ s).
//!
//! With one data center the index is bounded by the live transactions instead
//! ([`CommittedIndex::prune_local`]): every record is local, its unlocked reads are at
//! snapshots at or above the read horizon H, and its locked reads observed their key's
//! newest version under a lock held until the commit is applied; so a key whose newest
//! version is at or below min(F, H) can never be in (lo, s) and is forgotten.

use std::collections::{BTreeMap, BTreeSet};

use kv::Version;

use crate::clock::ShowVersion;
use crate::record::{ReadSpan, Record, TxnKey};

/// What the committed transactions known at a DC imply for later records.
#[derive(Clone, Debug, Default)]
pub struct CommittedIndex {
    /// Key → its committed versions: every one above the pruning horizon, and the newest
    /// one at or below it.
    versions: BTreeMap<Vec<u8>, BTreeSet<Version>>,
    /// Key → highest version of a committed transaction that read it (point reads).
    point_reads: BTreeMap<Vec<u8>, Version>,
    /// Range reads of committed transactions above the horizon, by version.
    span_reads: BTreeMap<Version, Vec<ReadSpan>>,
    /// The keys each version wrote that are not yet pruned, by version.
    unpruned: BTreeMap<Version, Vec<Vec<u8>>>,
    /// Point reads by version, for pruning `point_reads`.
    point_read_log: BTreeMap<Version, Vec<Vec<u8>>>,
    /// Keys pruned down to their newest version, by that version (for `prune_local`).
    floored: BTreeMap<Version, Vec<Vec<u8>>>,
}

impl CommittedIndex {
    /// Adds a committed record.
    pub fn add(&mut self, record: &Record) {
        for (key, _) in &record.writes {
            self.versions
                .entry(key.clone())
                .or_default()
                .insert(record.version);
        }
        self.unpruned
            .entry(record.version)
            .or_default()
            .extend(record.writes.iter().map(|(k, _)| k.clone()));
        for read in &record.reads {
            match read.span.as_point() {
                Some(key) => {
                    let v = self.point_reads.entry(key.to_vec()).or_default();
                    *v = (*v).max(record.version);
                    self.point_read_log
                        .entry(record.version)
                        .or_default()
                        .push(key.to_vec());
                }
                None => self
                    .span_reads
                    .entry(record.version)
                    .or_default()
                    .push(read.span.clone()),
            }
        }
    }

    /// A key's committed version known without its record (a retired attempt's write,
    /// at or below the floor, after a restart).
    pub fn add_version(&mut self, key: &[u8], version: Version) {
        self.versions
            .entry(key.to_vec())
            .or_default()
            .insert(version);
        self.unpruned.entry(version).or_default().push(key.to_vec());
    }

    /// Forgets what no record above `horizon` can be refused for (module docs): range
    /// reads at or below it, and every version at or below it but each key's newest.
    pub fn prune(&mut self, horizon: Version) {
        self.prune_at(horizon, false);
    }

    fn prune_at(&mut self, horizon: Version, track_floored: bool) {
        self.span_reads = self.span_reads.split_off(&(horizon + 1));
        let above = self.point_read_log.split_off(&(horizon + 1));
        for key in std::mem::replace(&mut self.point_read_log, above)
            .into_values()
            .flatten()
        {
            if self.point_reads.get(&key).is_some_and(|v| *v <= horizon) {
                self.point_reads.remove(&key);
            }
        }
        let above = self.unpruned.split_off(&(horizon + 1));
        for key in std::mem::replace(&mut self.unpruned, above)
            .into_values()
            .flatten()
        {
            if let Some(set) = self.versions.get_mut(&key) {
                if let Some(&newest) = set.range(..=horizon).next_back() {
                    *set = set.split_off(&newest);
                    if track_floored && set.len() == 1 {
                        self.floored.entry(newest).or_default().push(key);
                    }
                }
            }
        }
    }

    /// One data center only (module docs): prunes at the floor `floor`, then forgets
    /// every key whose newest version is at or below `horizon` (≤ `floor`).
    pub fn prune_local(&mut self, floor: Version, horizon: Version) {
        assert!(horizon <= floor, "the read horizon is capped by the floor");
        self.prune_at(floor, true);
        let above = self.floored.split_off(&(horizon + 1));
        for key in std::mem::replace(&mut self.floored, above)
            .into_values()
            .flatten()
        {
            if self
                .versions
                .get(&key)
                .is_some_and(|set| set.last().is_some_and(|v| *v <= horizon))
            {
                self.versions.remove(&key);
            }
        }
    }

    /// Keys and reads held (a gauge; bounded by the keyspace, or with one DC by the
    /// live transactions).
    pub fn size(&self) -> usize {
        self.versions.len() + self.point_reads.len() + self.span_reads.len()
    }

    /// Newest committed version of `key`, 0 if none.
    pub fn latest(&self, key: &[u8]) -> Version {
        self.versions
            .get(key)
            .and_then(|v| v.last().copied())
            .unwrap_or(0)
    }

    /// Highest version of a committed transaction that read `key`, 0 if none.
    fn read_timestamp(&self, key: &[u8]) -> Version {
        let point = self.point_reads.get(key).copied().unwrap_or(0);
        self.span_reads
            .iter()
            .rev()
            .find(|(_, spans)| spans.iter().any(|span| span.contains(key)))
            .map_or(point, |(v, _)| point.max(*v))
    }

    /// A committed version c of a key in `span` with `lo < c < hi`.
    fn version_between(&self, span: &ReadSpan, lo: Version, hi: Version) -> Option<Version> {
        let keys = match &span.end {
            Some(end) => self.versions.range(span.start.clone()..end.clone()),
            None => self.versions.range(span.start.clone()..),
        };
        keys.filter_map(|(_, versions)| versions.range(lo + 1..hi).next().copied())
            .next()
    }
}

/// A DC's verdict on a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Commit,
    Abort(String),
    /// Re-check once these prepared transactions' outcomes are applied.
    Wait(Vec<TxnKey>),
}

/// Who checks: the origin before it votes, or a remote voter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checker {
    Origin,
    Remote,
}

/// Checks `record` against the committed state and the prepared records (§5.4, §6.1).
pub fn check<'a>(
    record: &Record,
    committed: &CommittedIndex,
    prepared: impl Iterator<Item = &'a Record>,
    checker: Checker,
) -> Verdict {
    let s = record.version;
    for (key, _) in &record.writes {
        let latest = committed.latest(key);
        if latest >= s {
            return Verdict::Abort(format!(
                "C1: {} has committed version {}",
                show(key),
                ShowVersion(latest)
            ));
        }
        let read = committed.read_timestamp(key);
        if read >= s {
            return Verdict::Abort(format!(
                "C2: {} was read at version {}",
                show(key),
                ShowVersion(read)
            ));
        }
    }
    for read in &record.reads {
        if let Some(c) = committed.version_between(&read.span, read.lo, s) {
            return Verdict::Abort(format!(
                "C3: read of {} at {} missed committed version {}",
                show(&read.span.start),
                ShowVersion(read.lo),
                ShowVersion(c)
            ));
        }
    }
    let mut older = Vec::new();
    for p in prepared {
        if p.key == record.key || !depends(record, p) {
            continue;
        }
        if checker == Checker::Remote && p.txn > record.txn {
            return Verdict::Abort(format!(
                "E3: depends on younger prepared transaction {:?}",
                p.key
            ));
        }
        older.push(p.key);
    }
    if older.is_empty() {
        Verdict::Commit
    } else {
        Verdict::Wait(older)
    }
}

/// Whether T's admissibility depends on prepared P's outcome (rules P1–P3).
fn depends(t: &Record, p: &Record) -> bool {
    let (s, pv) = (t.version, p.version);
    let p_writes = |key: &[u8]| p.writes.iter().any(|(k, _)| k == key);
    if pv > s {
        for (key, _) in &t.writes {
            // P1, P2.
            if p_writes(key) || p.reads.iter().any(|r| r.span.contains(key)) {
                return true;
            }
        }
    }
    // P3.
    t.reads
        .iter()
        .any(|r| r.lo < pv && pv < s && p.writes.iter().any(|(k, _)| r.span.contains(k)))
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ReadEntry;

    fn record(
        seq: u64,
        txn: u64,
        version: Version,
        reads: &[(&str, Version)],
        writes: &[&str],
    ) -> Record {
        Record {
            key: TxnKey { origin: 0, seq },
            txn,
            version,
            reads: reads
                .iter()
                .map(|(k, lo)| ReadEntry {
                    span: ReadSpan::point(k.as_bytes()),
                    lo: *lo,
                })
                .collect(),
            writes: writes
                .iter()
                .map(|k| (k.as_bytes().to_vec(), Some(b"v".to_vec())))
                .collect(),
        }
    }

    fn verdict(t: &Record, committed: &[Record], prepared: &[Record], checker: Checker) -> Verdict {
        let mut index = CommittedIndex::default();
        for c in committed {
            index.add(c);
        }
        check(t, &index, prepared.iter(), checker)
    }

    /// A committed record reading `span` (a range when `range`) at `lo`.
    fn range_reader(seq: u64, version: Version, start: &str, end: &str, writes: &[&str]) -> Record {
        let mut r = record(seq, seq, version, &[], writes);
        r.reads.push(ReadEntry {
            span: ReadSpan {
                start: start.as_bytes().to_vec(),
                end: Some(end.as_bytes().to_vec()),
            },
            lo: 0,
        });
        r
    }

    #[test]
    fn pruning_at_the_floor_changes_no_verdict_above_it() {
        let committed = [
            record(1, 1, 10, &[("y", 0)], &["x"]),
            record(2, 2, 20, &[], &["x", "z"]),
            range_reader(3, 15, "x", "y", &["q"]),
            record(4, 4, 30, &[], &["x"]),
            range_reader(5, 35, "p", "r", &["w"]),
            record(6, 6, 22, &[("z", 0)], &["y"]),
        ];
        let mut full = CommittedIndex::default();
        let mut pruned = CommittedIndex::default();
        for c in &committed {
            full.add(c);
            pruned.add(c);
        }
        let horizon = 25;
        pruned.prune(horizon);
        assert!(pruned.versions[b"x".as_slice()].len() < full.versions[b"x".as_slice()].len());
        assert_eq!(pruned.span_reads.len(), 1);
        for s in horizon + 1..45 {
            for lo in 0..s {
                for key in ["x", "y", "z", "q", "w", "a"] {
                    let readers = record(9, 9, s, &[(key, lo)], &[]);
                    let writer = record(9, 9, s, &[], &[key]);
                    let ranger = {
                        let mut r = range_reader(9, s, "a", "zz", &[]);
                        r.reads[0].lo = lo;
                        r
                    };
                    // The verdict, not its wording (which names the version found).
                    let kind = |index: &CommittedIndex, t: &Record| match check(
                        t,
                        index,
                        std::iter::empty(),
                        Checker::Remote,
                    ) {
                        Verdict::Abort(reason) => format!("abort {}", &reason[..2]),
                        other => format!("{other:?}"),
                    };
                    for t in [readers, writer, ranger] {
                        assert_eq!(
                            kind(&pruned, &t),
                            kind(&full, &t),
                            "s {s}, lo {lo}, key {key}"
                        );
                    }
                }
            }
        }
        // Late commits below the horizon, then pruning again, keep the newest per key.
        pruned.add(&record(7, 7, 12, &[], &["x", "n"]));
        pruned.prune(horizon);
        assert_eq!(pruned.latest("x".as_bytes()), 30);
        assert_eq!(pruned.latest("n".as_bytes()), 12);
    }

    #[test]
    fn committed_rules_abort() {
        let w = record(1, 1, 50, &[("x", 0)], &["x"]);
        // C1: a newer committed write of a written key.
        let t = record(2, 2, 40, &[], &["x"]);
        assert!(
            matches!(verdict(&t, std::slice::from_ref(&w), &[], Checker::Remote), Verdict::Abort(r) if r.starts_with("C1"))
        );
        // C2: a committed read of a written key at a higher version.
        let reader = record(3, 3, 60, &[("y", 0)], &[]);
        let t = record(4, 4, 55, &[], &["y"]);
        assert!(
            matches!(verdict(&t, &[reader], &[], Checker::Remote), Verdict::Abort(r) if r.starts_with("C2"))
        );
        // C3: a read that missed a committed version below T's.
        let t = record(5, 5, 70, &[("x", 10)], &["z"]);
        assert!(
            matches!(verdict(&t, std::slice::from_ref(&w), &[], Checker::Remote), Verdict::Abort(r) if r.starts_with("C3"))
        );
        // The read saw that version: fine.
        let t = record(6, 6, 70, &[("x", 50)], &["x"]);
        assert_eq!(verdict(&t, &[w], &[], Checker::Remote), Verdict::Commit);
    }

    #[test]
    fn prepared_rules_wait_or_abort_by_age() {
        // Prepared P reads and writes x at version 50; T (priority 20) writes x at 40,
        // below P's pending write (P1).
        let t = record(2, 20, 40, &[], &["x"]);
        // P younger than T (priority 30 > 20): a remote voter gives way at once (E3).
        let younger = record(1, 30, 50, &[("x", 0)], &["x"]);
        assert!(
            matches!(verdict(&t, &[], std::slice::from_ref(&younger), Checker::Remote), Verdict::Abort(r) if r.starts_with("E3"))
        );
        // P older than T: wait for its outcome.
        let older = record(1, 5, 50, &[("x", 0)], &["x"]);
        assert_eq!(
            verdict(&t, &[], std::slice::from_ref(&older), Checker::Remote),
            Verdict::Wait(vec![older.key])
        );
        // The origin has not voted: it waits whatever the ages (E0).
        assert_eq!(
            verdict(&t, &[], std::slice::from_ref(&younger), Checker::Origin),
            Verdict::Wait(vec![younger.key])
        );
        // P3: T read x at 0, below P's pending write at 50, and commits above it.
        let t = record(3, 40, 60, &[("x", 0)], &["y"]);
        assert_eq!(
            verdict(&t, &[], std::slice::from_ref(&older), Checker::Remote),
            Verdict::Wait(vec![older.key])
        );
        // A blind write above a pending write is ordered by versions: commit.
        let t = record(4, 40, 60, &[], &["x"]);
        assert_eq!(verdict(&t, &[], &[older], Checker::Remote), Verdict::Commit);
    }

    #[test]
    fn spans_are_checked_as_ranges() {
        let w = record(1, 1, 50, &[], &["b"]);
        let mut t = record(2, 2, 60, &[], &["z"]);
        t.reads.push(ReadEntry {
            span: ReadSpan {
                start: b"a".to_vec(),
                end: Some(b"c".to_vec()),
            },
            lo: 10,
        });
        assert!(matches!(
            verdict(&t, &[w], &[], Checker::Remote),
            Verdict::Abort(_)
        ));
        assert_eq!(ReadSpan::point(b"k").as_point(), Some(&b"k"[..]));
        assert_eq!(t.reads[0].span.as_point(), None);
    }

    #[test]
    fn local_pruning_forgets_keys_below_the_read_horizon_and_keeps_the_verdicts_above() {
        let mut index = CommittedIndex::default();
        for r in [
            record(1, 1, 10, &[("r", 0)], &["old"]),
            record(2, 2, 12, &[], &["busy"]),
            record(3, 3, 40, &[("r2", 0)], &["busy"]),
        ] {
            index.add(&r);
        }
        index.prune_local(50, 20);
        // "old" (newest 10 ≤ 20) and both point reads (≤ the floor 50) are gone; "busy"
        // keeps its newest version, 40.
        assert_eq!(index.size(), 1);
        assert_eq!(index.latest(b"old"), 0);
        assert_eq!(index.latest(b"busy"), 40);
        // A read of "busy" at a snapshot at or above the horizon still sees the write
        // at 40 it missed.
        let stale = record(4, 4, 60, &[("busy", 20)], &["z"]);
        assert!(matches!(
            check(&stale, &index, std::iter::empty(), Checker::Origin),
            Verdict::Abort(_)
        ));
        // Pruning again forgets "busy" once the horizon passes its newest version.
        index.prune_local(60, 45);
        assert_eq!(index.size(), 0);
    }
}
