//! Who a data directory is, and which directories of its peers this node knows.
//!
//! A data directory belongs to one DC of one cluster (`cluster_id`, written on first
//! start) and carries an **incarnation**: a random number drawn when the directory is
//! created. Every node records, durably, the incarnation of each peer the first time it
//! hears it (in `Hello`), and from then on refuses that DC under any other one: a DC
//! restarted from an empty directory has lost its attempt sequence, votes, promises and
//! acceptances, and letting it vote again could decide an instance twice (issue 12,
//! item 2). Batches name the incarnation of the receiver they were verified for, so a
//! node that comes back under a new incarnation refuses what its peers still address
//! to its predecessor, and they find out by asking `Hello` again.
//!
//! An *older copy* of a DC's own directory (a backup restored, a disk snapshot rolled
//! back) has the right incarnation but has lost what its DC promised since the copy.
//! Each directory therefore counts its starts (the **generation**, durable, incremented
//! at every open) and draws a random **run** id per start; peers record the highest
//! generation they heard from each DC with its run, and refuse a Hello whose generation
//! is lower, or equal under another run: the copy's next start reuses a generation the
//! original already started with.
//!
//! A node refused by a peer at start stops with an error that says so (the caller asks
//! every reachable peer before serving); a peer that was down then refuses it when it
//! comes back, and the refused node stays cut off (its log says why) until the operator
//! rebuilds it from a peer: `meridian node --rejoin` with an empty directory, which every
//! peer records in place of the lost one ([`Identity::accept_rebuilt`]).
//!
//! A peer out of contact for longer than the cluster keeps history for it is **evicted**
//! ([`Identity::evict`], docs/protocol.md §7.8): its directory, known or not yet heard
//! of, is refused from then on as a replaced one is, and the DC takes part again only
//! once rebuilt the same way.

use std::sync::Arc;

use anyhow::bail;
use kv::keys::Key;
use kv::{Store, WriteBatch};
use parking_lot::Mutex;
use replication::DcId;

/// The data directory's owner, written on first start.
const IDENTITY_KEY: &str = "cluster_id";
/// This directory's incarnation.
const INCARNATION_KEY: &str = "incarnation";
/// How many times this directory has started.
const GENERATION_KEY: &str = "generation";

fn peer_key(dc: DcId) -> String {
    format!("peer_incarnation/{dc}")
}

fn peer_generation_key(dc: DcId) -> String {
    format!("peer_generation/{dc}")
}

fn peer_evicted_key(dc: DcId) -> String {
    format!("peer_evicted/{dc}")
}

/// Recorded as the evicted incarnation of a DC evicted before it was ever heard: every
/// directory but a rebuilt one is refused.
const EVICTED_UNHEARD: u64 = u64::MAX;

/// What a DC says of itself in `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub incarnation: u64,
    pub generation: u64,
    pub run: u64,
}

fn read_u64s<const N: usize>(v: Option<Vec<u8>>) -> Option<[u64; N]> {
    let v = v?;
    (v.len() == 8 * N).then(|| {
        std::array::from_fn(|i| {
            u64::from_be_bytes(v[8 * i..8 * i + 8].try_into().expect("8 bytes"))
        })
    })
}

pub struct Identity {
    store: Arc<Store>,
    me: DcId,
    /// This directory's incarnation (never 0).
    pub incarnation: u64,
    /// Whether this start created the directory's identity.
    pub fresh: bool,
    /// This start's number (durable, from 1) and random id.
    pub generation: u64,
    pub run: u64,
    /// Per DC, the incarnation recorded for it (0: none yet).
    known: Mutex<Vec<u64>>,
    /// Per DC, the highest generation heard from it and that start's run ((0, 0): none).
    generations: Mutex<Vec<(u64, u64)>>,
    /// Per DC, the incarnation evicted (0: none; [`EVICTED_UNHEARD`]: any not rebuilt).
    evicted: Mutex<Vec<u64>>,
}

impl Identity {
    /// Refuses a data directory of another cluster or DC, or of a single node; claims
    /// a new one (drawing its incarnation).
    pub fn open(
        store: Arc<Store>,
        cluster: &str,
        me: DcId,
        dcs: usize,
    ) -> anyhow::Result<Identity> {
        let key = Key::Meta(IDENTITY_KEY).encode();
        let want = format!("{cluster}/{me}/{dcs}");
        let engine = store.engine().clone();
        let fresh = match engine.get(&key)? {
            Some(found) => {
                let found = String::from_utf8_lossy(&found);
                if found != want {
                    let mut parts = found.splitn(3, '/');
                    let (c, d, n) = (
                        parts.next().unwrap_or(""),
                        parts.next().unwrap_or("?"),
                        parts.next().unwrap_or("?"),
                    );
                    bail!(
                        "the data directory belongs to DC {d} of cluster '{c}' ({n} DCs), \
                         not DC {me} of cluster '{cluster}' ({dcs} DCs)"
                    );
                }
                false
            }
            None if store.mvcc().last_committed_version()? > 0 => bail!(
                "the data directory holds the data of a single-node Meridian (`meridian start`); \
                 a cluster's node starts from an empty directory or its own"
            ),
            None => true,
        };
        let incarnation_key = Key::Meta(INCARNATION_KEY).encode();
        let incarnation = match engine.get(&incarnation_key)? {
            Some(v) if v.len() == 8 => u64::from_be_bytes(v.try_into().expect("8 bytes")),
            _ => {
                // A new directory, or one from before incarnations: drawn now.
                let incarnation = rand::random::<u64>().max(1);
                let mut batch = WriteBatch::new();
                batch.put(key, want.into_bytes());
                batch.put(incarnation_key, incarnation.to_be_bytes().to_vec());
                engine.write(&batch, true)?;
                incarnation
            }
        };
        let generation_key = Key::Meta(GENERATION_KEY).encode();
        let generation = read_u64s::<1>(engine.get(&generation_key)?).map_or(0, |[g]| g) + 1;
        let mut batch = WriteBatch::new();
        batch.put(generation_key, generation.to_be_bytes().to_vec());
        engine.write(&batch, true)?;
        let mut known = vec![0; dcs];
        let mut generations = vec![(0, 0); dcs];
        let mut evicted = vec![0; dcs];
        for dc in 0..dcs {
            let id = dc as DcId;
            let key = Key::Meta(&peer_evicted_key(id)).encode();
            if let Some([i]) = read_u64s::<1>(engine.get(&key)?) {
                evicted[dc] = i;
            }
            if let Some([i]) = read_u64s::<1>(engine.get(&Key::Meta(&peer_key(id)).encode())?) {
                known[dc] = i;
            }
            let key = Key::Meta(&peer_generation_key(id)).encode();
            if let Some([g, r]) = read_u64s::<2>(engine.get(&key)?) {
                generations[dc] = (g, r);
            }
        }
        Ok(Identity {
            store,
            me,
            incarnation,
            fresh,
            generation,
            run: rand::random::<u64>().max(1),
            known: Mutex::new(known),
            generations: Mutex::new(generations),
            evicted: Mutex::new(evicted),
        })
    }

    /// The DC this directory belongs to.
    pub fn me(&self) -> DcId {
        self.me
    }

    /// What this node says of itself in `Hello`.
    pub fn claim(&self) -> Claim {
        Claim {
            incarnation: self.incarnation,
            generation: self.generation,
            run: self.run,
        }
    }

    /// DC `dc` makes `claim` (an incarnation of 0: a node too old to say). The first
    /// incarnation heard is recorded durably, any other refused; a generation above the
    /// one recorded is recorded with its run, one below it, or equal under another run,
    /// refused (an older copy of the directory). Refusals come with the reason.
    pub fn check_peer(&self, dc: DcId, claim: Claim) -> Result<(), String> {
        self.check_incarnation(dc, claim.incarnation)?;
        self.check_generation(dc, claim)
    }

    fn check_generation(&self, dc: DcId, claim: Claim) -> Result<(), String> {
        if claim.generation == 0 || dc == self.me {
            return Ok(());
        }
        let mut generations = self.generations.lock();
        let Some(slot) = generations.get_mut(usize::from(dc)) else {
            return Ok(());
        };
        let (seen, run) = *slot;
        if claim.generation == seen && claim.run == run {
            return Ok(());
        }
        if claim.generation <= seen {
            return Err(format!(
                "DC {dc} came back with an older copy of its data directory (start {} of \
                 the directory; this cluster has seen start {seen}): the copy has lost the \
                 votes and promises its DC made since it was taken, so it may not rejoin. \
                 Start the DC from its latest directory, or rebuild it from a peer with an \
                 empty directory (`meridian node --rejoin`)",
                claim.generation
            ));
        }
        let mut value = claim.generation.to_be_bytes().to_vec();
        value.extend_from_slice(&claim.run.to_be_bytes());
        let mut batch = WriteBatch::new();
        batch.put(Key::Meta(&peer_generation_key(dc)).encode(), value);
        if let Err(e) = self.store.engine().write(&batch, true) {
            return Err(format!("cannot record DC {dc}'s start: {e}"));
        }
        *slot = (claim.generation, claim.run);
        Ok(())
    }

    fn check_incarnation(&self, dc: DcId, incarnation: u64) -> Result<(), String> {
        if dc == self.me {
            return Ok(());
        }
        if self.is_evicted_directory(dc, incarnation) {
            return Err(evicted_refusal(dc));
        }
        if incarnation == 0 {
            return Ok(());
        }
        let mut known = self.known.lock();
        let Some(slot) = known.get_mut(usize::from(dc)) else {
            return Ok(());
        };
        if *slot == incarnation {
            return Ok(());
        }
        if *slot != 0 {
            return Err(format!(
                "DC {dc} came back with another data directory (incarnation {incarnation:x}; \
                 this cluster knows {:x}): an empty or replaced directory has lost the \
                 votes and promises its peers rely on, so it may not rejoin. Restore its \
                 own directory, or rebuild the DC from a peer (`meridian node --rejoin`)",
                *slot
            ));
        }
        let mut batch = WriteBatch::new();
        batch.put(
            Key::Meta(&peer_key(dc)).encode(),
            incarnation.to_be_bytes().to_vec(),
        );
        if let Err(e) = self.store.engine().write(&batch, true) {
            return Err(format!("cannot record DC {dc}'s incarnation: {e}"));
        }
        *slot = incarnation;
        tracing::info!(
            dc,
            incarnation = format!("{incarnation:x}"),
            "recorded a peer's data directory"
        );
        Ok(())
    }

    /// DC `dc` is being rebuilt from a peer (state transfer, docs/protocol.md §7.7) under
    /// a new directory making `claim`: it is recorded durably in place of the directory
    /// known for `dc`, whose `Hello`s are refused from then on.
    pub fn accept_rebuilt(&self, dc: DcId, claim: Claim) -> anyhow::Result<()> {
        if dc == self.me || usize::from(dc) >= self.known.lock().len() {
            bail!("DC {dc} cannot be rebuilt from DC {}", self.me);
        }
        let (seen, _) = self.generations.lock()[usize::from(dc)];
        if self.known(dc) == claim.incarnation && claim.generation <= seen {
            // A repeated or late `Rejoin` of the directory already recorded: what was
            // recorded since (a later start) stands.
            return Ok(());
        }
        let mut generation = claim.generation.to_be_bytes().to_vec();
        generation.extend_from_slice(&claim.run.to_be_bytes());
        let mut batch = WriteBatch::new();
        batch.put(
            Key::Meta(&peer_key(dc)).encode(),
            claim.incarnation.to_be_bytes().to_vec(),
        );
        batch.put(Key::Meta(&peer_generation_key(dc)).encode(), generation);
        batch.delete(Key::Meta(&peer_evicted_key(dc)).encode());
        self.store.engine().write(&batch, true)?;
        self.known.lock()[usize::from(dc)] = claim.incarnation;
        self.generations.lock()[usize::from(dc)] = (claim.generation, claim.run);
        self.evicted.lock()[usize::from(dc)] = 0;
        tracing::info!(
            dc,
            incarnation = format!("{:x}", claim.incarnation),
            "a peer is being rebuilt under a new data directory"
        );
        Ok(())
    }

    /// The incarnation recorded for `dc` (0: none).
    pub fn known(&self, dc: DcId) -> u64 {
        self.known.lock().get(usize::from(dc)).copied().unwrap_or(0)
    }

    /// Evicts DC `dc` (docs/protocol.md §7.8): its directory — the one recorded, or
    /// any if none was heard yet — is refused durably from now on, until the DC is
    /// rebuilt under a new one ([`Self::accept_rebuilt`]). Returns whether it was not
    /// evicted already. The caller then stops keeping history for it
    /// (`replication::Participant::evict`).
    pub fn evict(&self, dc: DcId) -> anyhow::Result<bool> {
        let dcs = self.known.lock().len();
        if dc == self.me || usize::from(dc) >= dcs {
            bail!("DC {} cannot evict DC {dc}", self.me);
        }
        if self.is_evicted(dc) {
            return Ok(false);
        }
        let incarnation = match self.known(dc) {
            0 => EVICTED_UNHEARD,
            known => known,
        };
        let mut batch = WriteBatch::new();
        batch.put(
            Key::Meta(&peer_evicted_key(dc)).encode(),
            incarnation.to_be_bytes().to_vec(),
        );
        self.store.engine().write(&batch, true)?;
        self.evicted.lock()[usize::from(dc)] = incarnation;
        Ok(true)
    }

    /// Whether `dc` is evicted (its recorded directory, or any, is refused).
    pub fn is_evicted(&self, dc: DcId) -> bool {
        self.is_evicted_directory(dc, self.known(dc))
    }

    /// Whether `incarnation` is a directory of `dc` evicted here.
    pub fn is_evicted_directory(&self, dc: DcId, incarnation: u64) -> bool {
        match self.evicted.lock().get(usize::from(dc)).copied() {
            None | Some(0) => false,
            Some(EVICTED_UNHEARD) => true,
            // A node too old to name its directory is refused too.
            Some(evicted) => evicted == incarnation || incarnation == 0,
        }
    }

    /// Every DC evicted here.
    pub fn evicted(&self) -> Vec<DcId> {
        let dcs = self.known.lock().len();
        (0..dcs as DcId).filter(|dc| self.is_evicted(*dc)).collect()
    }
}

pub(super) fn evicted_refusal(dc: DcId) -> String {
    format!(
        "DC {dc} was evicted: it was out of contact for longer than its peers keep history \
         for it (`evict_after_s` in the cluster file), so they no longer hold what it \
         missed. Rebuild it from its peers: move its data directory aside and start it \
         with `meridian node --rejoin` on an empty one"
    )
}

/// Whether a data directory's store belongs to a cluster (for `meridian start`).
pub fn cluster_identity(store: &Store) -> anyhow::Result<Option<String>> {
    Ok(store
        .engine()
        .get(&Key::Meta(IDENTITY_KEY).encode())?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv::MemoryEngine;

    fn open(engine: &Arc<MemoryEngine>, me: DcId) -> Identity {
        let store = Arc::new(Store::open(engine.clone() as Arc<dyn kv::Engine>).unwrap());
        Identity::open(store, "c", me, 3).unwrap()
    }

    /// Issue 12, item 7: an eviction is durable and refuses the evicted directory (or
    /// any, if none was heard) until the DC is rebuilt under a new one.
    #[test]
    fn an_evicted_directory_is_refused_across_restarts_until_rebuilt() {
        let engine = Arc::new(MemoryEngine::new());
        let peer = |incarnation| Claim {
            incarnation,
            generation: 1,
            run: 1,
        };
        let id = open(&engine, 0);
        assert!(
            id.evict(2).unwrap(),
            "DC 2 never heard: any directory is refused"
        );
        assert!(!id.evict(2).unwrap(), "already evicted");
        assert!(id.check_peer(2, peer(7)).is_err());
        id.check_peer(1, peer(5)).unwrap();
        assert!(id.evict(1).unwrap());
        drop(id);
        let id = open(&engine, 0);
        assert_eq!(id.evicted(), vec![1, 2]);
        let why = id.check_peer(1, peer(5)).unwrap_err();
        assert!(why.contains("evicted") && why.contains("--rejoin"), "{why}");
        assert!(id.is_evicted_directory(1, 5) && !id.is_evicted_directory(1, 6));
        assert!(
            id.is_evicted_directory(1, 0),
            "a node too old to name its directory is refused once its DC is evicted"
        );
        assert!(!id.is_evicted_directory(0, 0) && !id.is_evicted_directory(1, 6));
        id.accept_rebuilt(1, peer(6)).unwrap();
        id.check_peer(1, peer(6)).unwrap();
        assert!(
            id.check_peer(1, peer(5)).is_err(),
            "the old directory stays refused"
        );
        drop(id);
        let id = open(&engine, 0);
        assert_eq!(id.evicted(), vec![2]);
        assert!(
            id.evict(0).is_err() && id.evict(3).is_err(),
            "itself, or no such DC"
        );
    }
}
