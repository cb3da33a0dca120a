//! The cluster's shape: its name, its data centers and where each DC's node listens,
//! and the emulated WAN between them. Read from a TOML file:
//!
//! ```toml
//! cluster = "demo"
//! learn = "owner"      # or "conservative" (optional; see docs/protocol.md §5.3)
//! evict_after_s = 600  # a DC out of contact this long is evicted (optional; §7.8)
//! max_history_records = 100000 # or sooner, once peers hold this much history for it
//!
//! [wan]                # emulated one-way delay between any two DCs (optional)
//! delay_ms = 50
//! jitter_ms = 5
//! loss = 0.0
//!
//! [[dc]]
//! id = 0
//! name = "frankfurt"
//! sql = "127.0.0.1:5433"    # PostgreSQL clients
//! peer = "127.0.0.1:6433"   # other DCs' nodes (gRPC)
//! tls_cert = "frankfurt.pem" # with [tls]: this node's certificate and key (optional
//! tls_key = "frankfurt.key"  # when [tls] names cluster-wide ones)
//!
//! [tls]                # optional: mutual TLS between nodes
//! ca = "ca.pem"        # the CA every node's certificate must chain to
//! cert = "node.pem"    # default certificate and key (also `meridian wan`'s identity)
//! key = "node.key"
//! ```
//!
//! With `[tls]` a node's certificate must name its DC (`subjectAltName DNS:<name>`): a
//! node verifies that the peer at DC d's address holds d's name, and every peer's
//! certificate must chain to the CA. Relative paths are relative to the cluster file.
//!
//! Validation refuses what would break the protocol's quorums or confuse peers: an even
//! number of DCs, ids that are not exactly 0..D, duplicate names or addresses.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use replication::DcId;
use serde::{Deserialize, Serialize};

/// The emulated link between two DCs (both directions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// One-way delay.
    #[serde(default)]
    pub delay_ms: u64,
    /// Up to this much extra delay, uniformly at random per message.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Probability that a message is dropped.
    #[serde(default)]
    pub loss: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcSpec {
    pub id: DcId,
    pub name: String,
    pub sql: SocketAddr,
    pub peer: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// Mutual TLS between nodes (module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    pub ca: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// The commit protocol's learning rule, cluster-wide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Learn {
    /// Owner-counting (L2): 2 WAN delays per commit with three DCs, also with one down.
    #[default]
    Owner,
    /// Conservative (L3): 3 WAN delays, Consus's count.
    Conservative,
}

impl Learn {
    pub fn rule(self) -> replication::LearnRule {
        match self {
            Learn::Owner => replication::LearnRule::OwnerCounting,
            Learn::Conservative => replication::LearnRule::Conservative,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub cluster: String,
    #[serde(default)]
    pub learn: Learn,
    #[serde(default)]
    pub wan: Link,
    /// A DC out of contact this long is evicted by its peers (docs/protocol.md §7.8):
    /// they stop keeping history for it, and it takes part again only once rebuilt.
    #[serde(default = "default_evict_after_s")]
    pub evict_after_s: u64,
    /// The history peers keep for DCs out of contact, in protocol records: once they
    /// hold more, a DC out of contact for [`MIN_EVICT_AFTER_S`] is evicted without
    /// waiting for `evict_after_s`, so a busy cluster's memory stays bounded.
    #[serde(default = "default_max_history_records")]
    pub max_history_records: u64,
    #[serde(rename = "dc")]
    pub dcs: Vec<DcSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// Ten minutes: outages of routine maintenance are ridden out; the history peers keep
/// meanwhile is what the cluster commits in that time.
pub const DEFAULT_EVICT_AFTER_S: u64 = 600;

fn default_evict_after_s() -> u64 {
    DEFAULT_EVICT_AFTER_S
}

/// The shortest eviction period: a node restarting, or a link that drops for a few
/// seconds, must not cost a rebuild.
pub const MIN_EVICT_AFTER_S: u64 = 10;

/// About 180 MB of a node's memory (a record held for a DC that is out costs ~1.8 KB,
/// measured in the soak): at the 10 ms soak's ~330 commits a second, five minutes of an
/// outage.
pub const DEFAULT_MAX_HISTORY_RECORDS: u64 = 100_000;

fn default_max_history_records() -> u64 {
    DEFAULT_MAX_HISTORY_RECORDS
}

impl Topology {
    pub fn load(path: &Path) -> anyhow::Result<Topology> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the cluster file {}", path.display()))?;
        let mut topology = Topology::parse(&text)
            .with_context(|| format!("invalid cluster file {}", path.display()))?;
        if let Some(dir) = path.parent() {
            topology.resolve_paths(dir);
        }
        Ok(topology)
    }

    /// Parses and validates a cluster file's text.
    pub fn parse(text: &str) -> anyhow::Result<Topology> {
        let topology: Topology = toml::from_str(text)?;
        topology.validate()?;
        Ok(topology)
    }

    /// Makes the TLS paths relative to `dir` absolute.
    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(p) = p {
                *p = dir.join(&*p);
            }
        };
        if let Some(tls) = &mut self.tls {
            tls.ca = dir.join(&tls.ca);
            fix(&mut tls.cert);
            fix(&mut tls.key);
        }
        for dc in &mut self.dcs {
            fix(&mut dc.tls_cert);
            fix(&mut dc.tls_key);
        }
    }

    /// DC `id`'s certificate and key files (None without TLS).
    pub fn tls_identity(&self, id: DcId) -> Option<(&Path, &Path)> {
        let tls = self.tls.as_ref()?;
        let dc = self.dcs.iter().find(|d| d.id == id)?;
        let cert = dc.tls_cert.as_ref().or(tls.cert.as_ref())?;
        let key = dc.tls_key.as_ref().or(tls.key.as_ref())?;
        Some((cert, key))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a topology serializes")
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.cluster.is_empty() {
            bail!("the cluster needs a name");
        }
        let n = self.dcs.len();
        if n == 0 || n.is_multiple_of(2) || n > 255 {
            bail!("the number of data centers must be odd and at most 255, got {n}");
        }
        let ids: BTreeSet<DcId> = self.dcs.iter().map(|d| d.id).collect();
        if ids.len() != n || ids.iter().copied().ne(0..n as DcId) {
            bail!("data-center ids must be exactly 0..{n}, each once");
        }
        let names: BTreeSet<&str> = self.dcs.iter().map(|d| d.name.as_str()).collect();
        if names.len() != n {
            bail!("data-center names must be unique");
        }
        let addrs: BTreeSet<SocketAddr> = self.dcs.iter().flat_map(|d| [d.sql, d.peer]).collect();
        if addrs.len() != 2 * n {
            bail!("every sql and peer address must be distinct");
        }
        if self.evict_after_s < MIN_EVICT_AFTER_S {
            bail!(
                "evict_after_s must be at least {MIN_EVICT_AFTER_S} s, got {}",
                self.evict_after_s
            );
        }
        if self.max_history_records == 0 {
            bail!("max_history_records must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.wan.loss) {
            bail!("wan.loss must be between 0 and 1");
        }
        if self.tls.is_some() {
            for dc in &self.dcs {
                if self.tls_identity(dc.id).is_none() {
                    bail!(
                        "[tls] is set but DC {} ({}) has no certificate and key \
                         (tls_cert/tls_key, or cert/key under [tls])",
                        dc.id,
                        dc.name
                    );
                }
            }
        }
        Ok(())
    }

    pub fn dc(&self, id: DcId) -> anyhow::Result<&DcSpec> {
        self.dcs
            .iter()
            .find(|d| d.id == id)
            .with_context(|| format!("DC {id} is not in cluster '{}'", self.cluster))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Topology {
        toml::from_str(
            r#"
            cluster = "t"
            [wan]
            delay_ms = 50
            [[dc]]
            id = 0
            name = "a"
            sql = "127.0.0.1:1"
            peer = "127.0.0.1:2"
            [[dc]]
            id = 1
            name = "b"
            sql = "127.0.0.1:3"
            peer = "127.0.0.1:4"
            [[dc]]
            id = 2
            name = "c"
            sql = "127.0.0.1:5"
            peer = "127.0.0.1:6"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_valid_file_round_trips() {
        let t = three();
        t.validate().unwrap();
        assert_eq!(t.wan.delay_ms, 50);
        let back: Topology = toml::from_str(&t.to_toml()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn refuses_what_would_break_quorums_or_peers() {
        let mut even = three();
        even.dcs.pop();
        assert!(even.validate().unwrap_err().to_string().contains("odd"));
        let mut gap = three();
        gap.dcs[2].id = 7;
        assert!(gap.validate().unwrap_err().to_string().contains("0..3"));
        let mut dup = three();
        dup.dcs[1].peer = dup.dcs[0].sql;
        assert!(dup.validate().unwrap_err().to_string().contains("distinct"));
        assert!(toml::from_str::<Topology>("cluster = \"x\"\nbogus = 1\ndc = []").is_err());
    }
}
