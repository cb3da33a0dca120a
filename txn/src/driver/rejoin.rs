//! State transfer (docs/protocol.md §7.7): rebuilding a DC whose data directory was lost
//! (or restored from an old copy) from a peer, so it can take part again.
//!
//! The rebuilt DC (R) asks **every** other DC to [`DriverHandle::peer_rejoined`]: each
//! makes durable, then tells R, the facts R needs to fence what its lost directory may
//! have promised ([`replication::RejoinFacts`]), and from then on pushes every outcome
//! it holds to R again. One of them, the donor, then streams a copy of its store
//! ([`export_copy`]): the protocol state and committed versions as of one moment. R
//! writes it into an empty store with a [`Rebuild`], which keeps what the donor
//! learned (records, outcomes, retired attempts, their writes) and drops what was the
//! donor's own (its votes and acceptor states), fences the attempts R's lost directory
//! may have seen, and only then lets the node open its driver.
//!
//! A rebuild interrupted by a crash leaves a marker: the driver refuses to open such a
//! store ([`open`](super::open)), and a new [`Rebuild`] starts by clearing it.

use kv::keys::{decode_version_key, protocol_span, version_span, Key};
use kv::{Engine, MvccStore, Store, Version, WriteBatch};
use replication::{DcId, Durable, DurableEntry, RejoinFacts};

use super::DriverHandle;
use crate::error::{Error, Result};

/// Set while a rebuild is under way (its value: nothing).
const REBUILDING_KEY: &str = "rebuilding";
/// The copied range: protocol state, shard descriptors and committed versions, the
/// families the raw key layout puts from `p` to `v` (node identity and other metadata,
/// under `m`, stay the rebuilt DC's own).
const COPY_START: &[u8] = b"p";
const COPY_END: &[u8] = b"w";
/// Raw bytes written per batch while a copy is written.
const BATCH_BYTES: usize = 4 << 20;

impl DriverHandle {
    /// DC `dc` is being rebuilt by state transfer: once this DC's participant has
    /// noted it (it pushes every outcome it holds to `dc` again) and that is durable,
    /// returns the facts to send `dc`.
    pub async fn peer_rejoined(&self, dc: DcId) -> Result<RejoinFacts> {
        let shared = &self.shared;
        let (facts, step) = {
            let mut participant = shared.participant.lock();
            if shared.failed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(Error::OutcomeUnknown);
            }
            let (out, facts) = participant.peer_rejoined(shared.clock.now_micros(), dc);
            (facts, shared.submit(vec![out]))
        };
        shared.release(step).await?;
        Ok(facts)
    }

    /// DC `dc` is evicted (docs/protocol.md §7.8; the caller has recorded it durably
    /// and does so again after a restart): this DC stops keeping history for it
    /// ([`replication::Participant::evict`]) until it is rebuilt.
    pub fn evict(&self, dc: DcId) {
        self.shared.participant.lock().evict(dc);
    }

    /// This DC's store as of one moment, for a rebuild ([`export_copy`]).
    pub fn export_copy(&self, sink: &mut kv::ExportSink<'_>) -> Result<()> {
        export_copy(&**self.shared.store.engine(), sink)
    }
}

/// Hands `sink` every pair a rebuild copies from `engine`, as of one moment. Call it
/// after [`DriverHandle::peer_rejoined`] returned, so that everything this DC learns
/// after the copy is pushed to the rebuilt DC.
pub fn export_copy(engine: &dyn Engine, sink: &mut kv::ExportSink<'_>) -> Result<()> {
    Ok(engine.export(COPY_START, COPY_END, sink)?)
}

/// Whether a rebuild of `engine` was interrupted.
pub fn rebuild_interrupted(engine: &dyn Engine) -> Result<bool> {
    Ok(engine.get(&Key::Meta(REBUILDING_KEY).encode())?.is_some())
}

/// Writes a donor's copy into this DC's store.
pub struct Rebuild<'a> {
    store: &'a Store,
    protocol: Vec<DurableEntry>,
    batch: WriteBatch,
    newest: Version,
    pairs: u64,
}

impl<'a> Rebuild<'a> {
    /// Starts a rebuild of `store`, which must hold no data (only the node's identity)
    /// unless an earlier rebuild of it was interrupted, whose pairs are cleared first.
    pub fn start(store: &'a Store) -> Result<Rebuild<'a>> {
        let engine = store.engine();
        let interrupted = rebuild_interrupted(&**engine)?;
        // A new store writes its shard map by itself (the donor's replaces it);
        // protocol state or committed versions mean the directory holds data.
        let holds = |(start, end): (Vec<u8>, Vec<u8>)| -> Result<bool> {
            Ok(!engine.scan(&start, Some(&end), 1)?.is_empty())
        };
        if !interrupted && (holds(protocol_span())? || holds(version_span())?) {
            return Err(Error::Rejoin(
                "the data directory holds data: a rebuild needs an empty one".into(),
            ));
        }
        let mut stale = WriteBatch::new();
        engine.export(COPY_START, COPY_END, &mut |k, _| {
            stale.delete(k.to_vec());
            if stale.size_bytes() >= BATCH_BYTES {
                engine.write(&std::mem::take(&mut stale), false)?;
            }
            Ok(())
        })?;
        stale.put(Key::Meta(REBUILDING_KEY).encode(), Vec::<u8>::new());
        engine.write(&stale, true)?;
        Ok(Rebuild {
            store,
            protocol: Vec::new(),
            batch: WriteBatch::new(),
            newest: 0,
            pairs: 0,
        })
    }

    /// Takes one pair of the donor's copy.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let (p_start, p_end) = protocol_span();
        if !(COPY_START..COPY_END).contains(&key) {
            return Err(Error::Rejoin(format!(
                "a pair outside the copied range: {key:02x?}"
            )));
        }
        self.pairs += 1;
        if (p_start.as_slice()..p_end.as_slice()).contains(&key) {
            let entry = postcard::from_bytes::<DurableEntry>(value).map_err(|e| {
                Error::Rejoin(format!("the donor's protocol state under {key:02x?}: {e}"))
            })?;
            self.protocol.push(entry);
            return Ok(());
        }
        if let Ok((_, version)) = decode_version_key(key) {
            self.newest = self.newest.max(version);
        }
        self.batch.put(key.to_vec(), value.to_vec());
        if self.batch.size_bytes() >= BATCH_BYTES {
            let batch = std::mem::take(&mut self.batch);
            self.store.engine().write(&batch, false)?;
        }
        Ok(())
    }

    /// Ends the rebuild of DC `me` of `dcs` with every other DC's facts: writes the
    /// rebuilt protocol state, syncs, and clears the marker (in the same batch).
    /// Returns the number of pairs copied.
    pub fn finish(mut self, me: DcId, dcs: usize, facts: &[RejoinFacts]) -> Result<u64> {
        let mut answered: Vec<DcId> = facts.iter().map(|f| f.from).collect();
        answered.sort_unstable();
        answered.dedup();
        let others: Vec<DcId> = (0..dcs as DcId).filter(|d| *d != me).collect();
        if answered != others {
            return Err(Error::Rejoin(format!(
                "a rebuild needs the facts of every other DC ({others:?}); it has {answered:?}"
            )));
        }
        let mut durable =
            Durable::from_entries(std::mem::take(&mut self.protocol)).rebuilt(me, dcs, facts);
        durable.observe(self.newest);
        let mut batch = std::mem::take(&mut self.batch);
        for entry in durable.entries() {
            let value = postcard::to_allocvec(&entry).expect("durable entries encode");
            batch.put(Key::Protocol(&entry.slot_key()).encode(), value);
        }
        if self.newest > 0 {
            batch.put(MvccStore::last_committed_key(), self.newest.to_be_bytes());
        }
        batch.delete(Key::Meta(REBUILDING_KEY).encode());
        self.store.engine().write(&batch, true)?;
        Ok(self.pairs)
    }
}
