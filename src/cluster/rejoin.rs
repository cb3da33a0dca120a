//! Rebuilding a DC from its peers (`meridian node --rejoin`, docs/protocol.md §7.7).
//!
//! A DC whose data directory was lost (a dead disk, a wiped or replaced machine) or
//! restored from an old copy is refused by its peers: it has forgotten the votes and
//! promises they rely on. The operator starts its node with `--rejoin` on an **empty**
//! directory, and the node, before it serves anything:
//!
//! 1. claims the directory (a new incarnation, `identity`);
//! 2. asks every other DC to `Rejoin`: each records the new directory in place of the
//!    lost one, makes its facts durable and answers them (`replication::RejoinFacts`),
//!    and from then on pushes every outcome it holds to this DC again. Every other DC
//!    must answer — it waits and retries until they do — because the fence for each
//!    origin's attempts comes from that origin;
//! 3. takes a copy of one peer's store (the donor, the lowest-numbered other DC),
//!    streamed as of one moment, after that peer's facts;
//! 4. writes the copy and the fenced protocol state ([`txn::driver::Rebuild`]), synced,
//!    then starts as any node does. It votes again once every attempt its lost
//!    directory may have voted on is decided (§7.7).
//!
//! A rebuild cut short (the node killed, a peer lost mid-copy) leaves a marker: the node
//! refuses to start without `--rejoin`, and `--rejoin` starts over.

use std::pin::Pin;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::{Stream, StreamExt};
use kv::Store;
use replication::{DcId, RejoinFacts};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};
use txn::driver::Rebuild;
use txn::DriverHandle;

use super::identity::{Claim, Identity};
use super::tls::{endpoint, PeerTls};
use super::topology::Topology;
use super::transport::proto::peer_client::PeerClient;
use super::transport::proto::{HelloRequest, RejoinChunk, RejoinRequest};
use super::transport::{hello_request, MESSAGE_BYTES_MAX};

/// Pairs' bytes per chunk of a copy.
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks read ahead of the network on the donor.
const CHUNKS_AHEAD: usize = 4;
/// How long a rebuild waits before asking unreachable peers again.
const RETRY: Duration = Duration::from_secs(2);

/// The stream a `Rejoin` answers with.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<RejoinChunk, Status>> + Send>>;

/// Serves a peer's `Rejoin` (the peer side of steps 2 and 3).
pub async fn serve(
    from: DcId,
    hello: &HelloRequest,
    copy: bool,
    identity: &Identity,
    driver: Option<&DriverHandle>,
) -> Result<Response<ChunkStream>, Status> {
    let Some(driver) = driver else {
        return Err(Status::unavailable("this node is not serving rebuilds"));
    };
    let claim = Claim {
        incarnation: hello.incarnation,
        generation: hello.generation,
        run: hello.run,
    };
    identity
        .accept_rebuilt(from, claim)
        .map_err(|e| Status::internal(format!("cannot record DC {from}'s new directory: {e}")))?;
    let facts = driver
        .peer_rejoined(from)
        .await
        .map_err(|e| Status::unavailable(format!("cannot note DC {from}'s rebuild: {e}")))?;
    tracing::warn!(
        dc = from,
        copy = copy,
        ?facts,
        "a peer is being rebuilt from this cluster"
    );
    let first = RejoinChunk {
        facts: postcard::to_allocvec(&facts).expect("facts encode"),
        last: !copy,
        ..RejoinChunk::default()
    };
    let (tx, rx) = mpsc::channel::<Result<RejoinChunk, Status>>(CHUNKS_AHEAD);
    let _ = tx.send(Ok(first)).await;
    if copy {
        let driver = driver.clone();
        tokio::task::spawn_blocking(move || {
            let mut chunk = RejoinChunk::default();
            let mut bytes = 0;
            let result = driver.export_copy(&mut |k, v| {
                chunk.keys.push(k.to_vec());
                chunk.values.push(v.to_vec());
                bytes += k.len() + v.len();
                if bytes >= CHUNK_BYTES {
                    bytes = 0;
                    tx.blocking_send(Ok(std::mem::take(&mut chunk)))
                        .map_err(|_| kv::Error::Closed)?;
                }
                Ok(())
            });
            let last = match result {
                Ok(()) => Ok(RejoinChunk {
                    last: true,
                    ..chunk
                }),
                Err(e) => Err(Status::internal(format!("the copy failed: {e}"))),
            };
            let _ = tx.blocking_send(last);
        });
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Response::new(Box::pin(stream)))
}

/// Rebuilds DC `me`'s empty `store` from its peers (steps 2–4), retrying until every
/// other DC has answered and the donor's copy is written.
pub async fn rebuild(
    topology: &Topology,
    me: DcId,
    tls: Option<&PeerTls>,
    identity: &Identity,
    store: &Store,
) -> anyhow::Result<()> {
    let others: Vec<DcId> = topology
        .dcs
        .iter()
        .map(|d| d.id)
        .filter(|d| *d != me)
        .collect();
    let Some(&donor) = others.first() else {
        bail!("a single data center has no peer to be rebuilt from");
    };
    // A directory that holds data is refused at once (what follows only waits for peers).
    drop(Rebuild::start(store)?);
    loop {
        match attempt(topology, me, tls, identity, store, &others, donor).await {
            Ok(pairs) => {
                tracing::info!(donor, pairs, "rebuilt from the cluster");
                println!("DC {me} was rebuilt from DC {donor} ({pairs} keys copied)");
                return Ok(());
            }
            Err(e) => {
                tracing::warn!("the rebuild cannot finish yet (retrying in {RETRY:?}): {e:#}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// One try: every other DC's facts, the donor's copy last.
async fn attempt(
    topology: &Topology,
    me: DcId,
    tls: Option<&PeerTls>,
    identity: &Identity,
    store: &Store,
    others: &[DcId],
    donor: DcId,
) -> anyhow::Result<u64> {
    let mut rebuild = Rebuild::start(store)?;
    let mut facts = Vec::new();
    for &dc in others.iter().filter(|d| **d != donor).chain([&donor]) {
        let spec = topology.dc(dc)?;
        let channel = endpoint(spec.peer, &spec.name, tls, Duration::from_secs(60))?
            .connect()
            .await
            .with_context(|| format!("DC {dc} ({}) is unreachable", spec.peer))?;
        let request = RejoinRequest {
            hello: Some(hello_request(&topology.cluster, me, identity)),
            copy: dc == donor,
        };
        let mut chunks = PeerClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .rejoin(Request::new(request))
            .await
            .with_context(|| format!("DC {dc} refused the rebuild"))?
            .into_inner();
        let first = chunks
            .next()
            .await
            .with_context(|| format!("DC {dc} ended the rebuild before its facts"))??;
        let f: RejoinFacts = postcard::from_bytes(&first.facts)
            .with_context(|| format!("DC {dc}'s facts do not decode"))?;
        if f.from != dc {
            bail!("DC {dc} answered as DC {}", f.from);
        }
        facts.push(f);
        let mut last = first.last;
        while !last {
            let chunk = chunks
                .next()
                .await
                .with_context(|| format!("DC {dc}'s copy broke off"))?
                .with_context(|| format!("DC {dc}'s copy broke off"))?;
            for (k, v) in chunk.keys.iter().zip(&chunk.values) {
                rebuild.add(k, v)?;
            }
            last = chunk.last;
        }
    }
    Ok(rebuild.finish(me, topology.dcs.len(), &facts)?)
}
