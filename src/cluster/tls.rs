//! Mutual TLS between nodes (optional, `[tls]` in the cluster file): every node presents
//! a certificate naming its DC and signed by the cluster's CA, and checks the same of
//! its peers — so a node talks only to the DC it expects at an address, and nothing
//! without a certificate of this cluster's CA can deliver protocol messages. Without
//! `[tls]` the transport is plain HTTP/2 (loopback demos, emulated WANs).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use replication::DcId;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use super::topology::Topology;

/// This node's TLS material.
#[derive(Clone)]
pub struct PeerTls {
    ca: Certificate,
    identity: Identity,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

impl PeerTls {
    /// DC `me`'s material, or for an admin client (None) the cluster-wide certificate
    /// (else DC 0's). None if the cluster has no `[tls]`.
    pub fn load(topology: &Topology, me: Option<DcId>) -> anyhow::Result<Option<PeerTls>> {
        let Some(tls) = &topology.tls else {
            return Ok(None);
        };
        let (cert, key) = match (me, &tls.cert, &tls.key) {
            (None, Some(cert), Some(key)) => (cert.as_path(), key.as_path()),
            (me, _, _) => topology
                .tls_identity(me.unwrap_or(0))
                .context("no TLS certificate for this node")?,
        };
        Ok(Some(PeerTls {
            ca: Certificate::from_pem(read(&tls.ca, "CA certificate")?),
            identity: Identity::from_pem(read(cert, "certificate")?, read(key, "key")?),
        }))
    }

    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    fn client(&self, peer_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(peer_name)
    }
}

/// An endpoint for the peer named `name` at `addr`, over TLS if `tls` is set.
pub fn endpoint(
    addr: SocketAddr,
    name: &str,
    tls: Option<&PeerTls>,
    timeout: Duration,
) -> anyhow::Result<Endpoint> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.client(name))
            .context("invalid TLS configuration")?;
    }
    Ok(endpoint)
}
