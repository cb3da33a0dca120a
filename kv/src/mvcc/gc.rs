//! Garbage collection of old versions (issue 12, item 7).
//!
//! Below a **GC horizon** H no read happens any more (the caller guarantees it: H is at
//! or below every live and future snapshot). A read at or above H sees, for each user
//! key, its newest version ≤ its snapshot; so of the versions ≤ H only the newest can
//! still be seen, and only if it is a live row (a tombstone reads as "nothing", as no
//! version at all does). [`MvccStore::collect_garbage`] walks the version runs from a
//! cursor and deletes the rest: every version ≤ H but the newest, and that one too if
//! it is a tombstone. Versions above H are never touched, so collecting is safe while
//! commits install versions above H; a pass examines a bounded number of entries and
//! returns where to go on, so it never holds up anything for long.

use super::*;

/// Where a collection resumes: a raw key, and the state of the run it is in.
#[derive(Debug, Default, Clone)]
pub struct GcCursor {
    raw: Option<Vec<u8>>,
    run_key: Vec<u8>,
    /// The run's newest version ≤ the horizon was already seen (kept or dropped).
    run_decided: bool,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcPass {
    pub examined: usize,
    pub removed: usize,
    /// The pass reached the end of the version keyspace (the cursor starts over).
    pub wrapped: bool,
}

impl MvccStore {
    /// Deletes versions no read at or above `horizon` can see, examining at most
    /// `budget` entries from `cursor` on (see the module doc). The deletions are written
    /// without a sync: a crash only means collecting them again.
    pub fn collect_garbage(
        &self,
        cursor: &mut GcCursor,
        horizon: Version,
        budget: usize,
    ) -> Result<GcPass> {
        let (span_start, span_end) = keys::version_span();
        let start = cursor.raw.clone().unwrap_or(span_start);
        let chunk = self.engine.scan(&start, Some(&span_end), budget.max(1))?;
        let mut batch = WriteBatch::new();
        let mut pass = GcPass::default();
        for (raw_key, raw_value) in &chunk {
            let (key, version) = keys::decode_version_key(raw_key)?;
            if key != cursor.run_key {
                cursor.run_key = key;
                cursor.run_decided = false;
            }
            pass.examined += 1;
            if version > horizon {
                continue;
            }
            if cursor.run_decided {
                batch.delete(raw_key.clone());
            } else {
                cursor.run_decided = true;
                if decode_value(raw_value)?.is_none() {
                    batch.delete(raw_key.clone());
                }
            }
        }
        pass.removed = batch.len();
        if !batch.is_empty() {
            self.engine.write(&batch, false)?;
        }
        match chunk.last() {
            Some((last, _)) if chunk.len() == budget.max(1) => {
                cursor.raw = Some(successor(last));
            }
            _ => {
                *cursor = GcCursor::default();
                pass.wrapped = true;
            }
        }
        Ok(pass)
    }
}
