//! Eviction of a DC out of contact for too long (docs/protocol.md §7.8).
//!
//! Peers keep every protocol record and outcome a DC has not acknowledged, so that it
//! can catch up when it comes back; while it is out, that history grows with what the
//! cluster commits. Once a peer has not been heard for `evict_after_s` (the cluster
//! file) by a node that hears a majority, the node evicts it: it records that DC's
//! directory as refused ([`Identity::evict`], durable), stops keeping history for it
//! ([`txn::DriverHandle::evict`]) and shows it as `evicted` in `SHOW DATA CENTERS`. The
//! evicted DC's node is refused when it comes back, with a message that says to rebuild
//! it (`meridian node --rejoin` on an empty directory, §7.7), which clears the eviction.
//!
//! Each node decides alone. That is safe: eviction only refuses a directory and retires
//! what every other DC holds, and a rebuilt DC fences whatever its previous directory
//! promised. An evicted DC still accepted by some peer (one that was itself down) takes
//! part with that peer only, as a DC partitioned from the others would, until it
//! restarts and is refused.

use std::sync::Arc;
use std::time::Duration;

use super::identity::Identity;
use super::status::PeerHealth;

/// How often silences are checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Evicts peers silent for `after` or longer, for as long as the node runs.
pub async fn watch(
    health: Arc<PeerHealth>,
    identity: Arc<Identity>,
    driver: txn::DriverHandle,
    after: Duration,
) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        for dc in health.due_for_eviction(after) {
            match identity.evict(dc) {
                Ok(_) => {
                    driver.evict(dc);
                    health.set_evicted(dc);
                    tracing::warn!(
                        dc,
                        after_s = after.as_secs(),
                        "evicted a DC out of contact too long: its history is no longer \
                         kept, and it must be rebuilt (`meridian node --rejoin`) to rejoin"
                    );
                }
                Err(e) => tracing::error!(dc, "cannot record the eviction of a DC: {e}"),
            }
        }
    }
}
