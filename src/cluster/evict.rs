//! Eviction of a DC out of contact for too long (docs/protocol.md §7.8).
//!
//! Peers keep every protocol record and outcome a DC has not acknowledged, so that it
//! can catch up when it comes back; while it is out, that history grows with what the
//! cluster commits. A node that has not heard a peer for `evict_after_s` (the cluster
//! file) — or for [`MIN_EVICT_AFTER_S`] once it holds more than `max_history_records`
//! attempts that peer has not acknowledged, so that memory stays bounded however busy
//! the cluster — while it is in contact with a majority, asks the other DCs how long
//! they have not heard it (`Silence`); when a majority of DCs, itself included, have not heard it for that
//! long, the node evicts it: it records that DC's directory as refused
//! ([`Identity::evict`], durable), stops keeping history for it
//! ([`txn::DriverHandle::evict`]) and shows it as `evicted` in `SHOW DATA CENTERS`. The
//! evicted DC's node is refused when it comes back, with a message that says to rebuild
//! it (`meridian node --rejoin` on an empty directory, §7.7), which clears the eviction.
//!
//! The majority's agreement keeps a link cut between two DCs that both still hear a
//! third from making them evict each other, and a node that was itself cut off from
//! evicting the peers it has not heard again yet. Each node still decides alone, and
//! that is safe: eviction only refuses a directory and retires what every other DC
//! holds, and a rebuilt DC fences whatever its previous directory promised. An evicted
//! DC still accepted by some peer (one that was itself down) takes part with that peer
//! only, as a DC partitioned from the others would, until it restarts and is refused.
//! Evictions and the recording of a rebuilt DC (`Rejoin`) hold one lock
//! ([`PeerHealth::membership`]), so an eviction never lands on a rebuilt directory.

use std::sync::Arc;
use std::time::Duration;

use replication::{quorum, DcId};

use super::identity::Identity;
use super::status::PeerHealth;
use super::tls::{endpoint, PeerTls};
use super::topology::{Topology, MIN_EVICT_AFTER_S};
use super::transport::proto::peer_client::PeerClient;
use super::transport::proto::SilenceRequest;

/// How often silences are checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a peer's answer to `Silence` is waited for.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a peer must have been out of contact to be evicted while this node holds
/// `held` attempts it is not known to have the outcome of: `evict_after_s`, or
/// [`MIN_EVICT_AFTER_S`] once that history is past `max_history_records` — unless the
/// peer is being rebuilt: its copy may take minutes, and the history kept for it meanwhile
/// is what it will catch up on.
pub fn eviction_period(topology: &Topology, held: u64, rebuilding: bool) -> Duration {
    if held > topology.max_history_records && !rebuilding {
        Duration::from_secs(MIN_EVICT_AFTER_S)
    } else {
        Duration::from_secs(topology.evict_after_s)
    }
}

/// What the watcher needs.
pub struct Watch {
    pub topology: Topology,
    pub me: DcId,
    pub tls: Option<PeerTls>,
    pub health: Arc<PeerHealth>,
    pub identity: Arc<Identity>,
    pub driver: txn::DriverHandle,
}

impl Watch {
    /// Evicts peers a majority has not heard for the eviction period, for as long as
    /// the node runs.
    pub async fn run(self) {
        let bound = usize::try_from(self.topology.max_history_records).unwrap_or(usize::MAX);
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let shortest = Duration::from_secs(MIN_EVICT_AFTER_S);
            let candidates = self.health.due_for_eviction(shortest);
            if candidates.is_empty() {
                continue;
            }
            let held = self.driver.held_for_past(bound);
            for dc in candidates {
                let held = held.as_ref().map_or(0, |h| h[usize::from(dc)]) as u64;
                let rebuilding = self.health.is_rebuilding(dc);
                let after = eviction_period(&self.topology, held, rebuilding);
                if self.health.silent_for(dc) >= after
                    && self.a_majority_has_not_heard(dc, after).await
                {
                    self.evict(dc, after, held).await;
                }
            }
        }
    }

    /// Whether, with this node, a majority of DCs have not heard `dc` for `after`.
    async fn a_majority_has_not_heard(&self, dc: DcId, after: Duration) -> bool {
        let mut silent = 1; // this node
        for peer in self
            .topology
            .dcs
            .iter()
            .filter(|p| p.id != self.me && p.id != dc)
        {
            let Ok(endpoint) = endpoint(peer.peer, &peer.name, self.tls.as_ref(), ASK_TIMEOUT)
            else {
                continue;
            };
            let request = SilenceRequest {
                cluster: self.topology.cluster.clone(),
                from: u32::from(self.me),
                dc: u32::from(dc),
            };
            // Bounded as a whole (a TLS handshake is not under the connect timeout); a
            // peer down or not answering does not count either way.
            let asked = tokio::time::timeout(2 * ASK_TIMEOUT, async {
                let channel = endpoint.connect().await.ok()?;
                PeerClient::new(channel).silence(request).await.ok()
            })
            .await;
            if let Ok(Some(reply)) = asked {
                if Duration::from_millis(reply.into_inner().silent_ms) >= after {
                    silent += 1;
                }
            }
        }
        silent >= quorum(self.topology.dcs.len())
    }

    async fn evict(&self, dc: DcId, after: Duration, held: u64) {
        let _membership = self.health.membership.lock().await;
        // Heard meanwhile, or rebuilt (a `Rejoin` counts as hearing it): not any more.
        if !self.health.due_for_eviction(after).contains(&dc) {
            return;
        }
        // A synced write: off the runtime's worker threads.
        let identity = self.identity.clone();
        let recorded = tokio::task::spawn_blocking(move || identity.evict(dc))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the eviction's write failed: {e}")));
        match recorded {
            Ok(newly) => {
                self.health.set_evicted(dc);
                if newly {
                    self.driver.evict(dc);
                    tracing::warn!(
                        dc,
                        after_s = after.as_secs(),
                        held,
                        "evicted a DC out of contact too long: its history is no longer \
                         kept, and it must be rebuilt (`meridian node --rejoin`) to rejoin"
                    );
                }
            }
            Err(e) => tracing::error!(dc, "cannot record the eviction of a DC: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::topology::{Learn, Link};

    #[test]
    fn a_history_past_its_bound_shortens_the_eviction_period() {
        let topology = Topology {
            cluster: "c".into(),
            learn: Learn::Owner,
            wan: Link::default(),
            evict_after_s: 600,
            max_history_records: 1_000,
            dcs: Vec::new(),
            tls: None,
        };
        let period = |held, rebuilding| eviction_period(&topology, held, rebuilding);
        assert_eq!(period(0, false), Duration::from_secs(600));
        assert_eq!(period(1_000, false), Duration::from_secs(600));
        assert_eq!(period(1_001, false), Duration::from_secs(MIN_EVICT_AFTER_S));
        assert_eq!(
            period(1_001, true),
            Duration::from_secs(600),
            "a DC copying its rebuild is given the whole period"
        );
    }
}
