//! `meridian`: the one binary — runs a node, and the tools around it.
//!
//! ```text
//!   meridian start     [--data-dir DIR] [--sql-addr ADDR]     run a node (embedded default)
//!   meridian node      --cluster FILE --dc N [--data-dir DIR]  run one DC of a cluster
//!   meridian demo      [--dcs 3] [--wan-delay-ms 50] [--base-port P] [--data-dir DIR]
//!   meridian wan       --cluster FILE [--delay-ms …] [--cut DC] [--deaf DC] [--heal DC]
//!   meridian sim       …                                        the protocol in simulation
//!   meridian sqllogic  [--url URL] [--known-failures FILE] FILES…   run .slt files over the wire
//! ```
//!
//! The node runtimes ([`node`] for one DC, [`cluster`] for several) own all IO: the
//! RocksDB directory, the SQL and peer listeners, timers, the signal handlers. The
//! protocol and transaction cores below them are driven, not threaded.

mod cluster;
mod elle;
mod jepsen;
mod node;
mod sim;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "A SQL database that spans data centers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: SQL over the PostgreSQL protocol, data in RocksDB.
    Start {
        /// Where the node keeps its data.
        #[arg(long, default_value = "meridian-data")]
        data_dir: PathBuf,
        /// Address for PostgreSQL clients.
        #[arg(long, default_value = "127.0.0.1:5433")]
        sql_addr: SocketAddr,
        /// Per-query memory limit in MiB (exceeding it fails the query with 53200).
        #[arg(long, default_value_t = 256)]
        query_memory_mib: usize,
        /// RocksDB block cache size in MiB.
        #[arg(long, default_value_t = 256)]
        block_cache_mib: usize,
    },
    /// Run one data center's node of a multi-DC cluster described by a TOML file, or
    /// join one by the peer address of any member.
    #[command(group(clap::ArgGroup::new("topology").required(true).args(["cluster", "join"])))]
    Node {
        /// The cluster file (see `meridian demo`'s cluster.toml for an example).
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// The peer address of any running member: its cluster file is fetched and kept
        /// as <data-dir>/cluster.toml (clusters without TLS).
        #[arg(long)]
        join: Option<SocketAddr>,
        /// This node's data-center id in the file.
        #[arg(long)]
        dc: u8,
        /// Where the node keeps its data.
        #[arg(long)]
        data_dir: PathBuf,
        /// Bound on clock offsets between DCs, for commit wait.
        #[arg(long, default_value_t = 1)]
        clock_bound_ms: u64,
        /// Per-query memory limit in MiB.
        #[arg(long, default_value_t = 256)]
        query_memory_mib: usize,
        /// RocksDB block cache size in MiB.
        #[arg(long, default_value_t = 128)]
        block_cache_mib: usize,
        /// Rebuild this DC from its peers before it starts (state transfer): for a DC whose
        /// data directory was lost or restored from an old copy, which its peers refuse.
        /// The data directory must be empty; every other DC must be reachable.
        #[arg(long)]
        rejoin: bool,
    },
    /// Start a local cluster, one node process per data center, with emulated WAN delay.
    Demo {
        /// Number of data centers (odd).
        #[arg(long, default_value_t = 3)]
        dcs: usize,
        /// Emulated one-way delay between data centers.
        #[arg(long, default_value_t = 50)]
        wan_delay_ms: u64,
        /// SQL port of the first DC; DC i listens on base-port + i (peers on + 1000 + i).
        #[arg(long, default_value_t = 5433)]
        base_port: u16,
        /// Where the nodes keep their data, logs, cluster.toml and demo.json.
        #[arg(long, default_value = "meridian-demo")]
        data_dir: PathBuf,
        /// Learning rule: `owner` (owner-counting: 2 WAN delays per commit with three
        /// DCs, also with one down) or `conservative` (3, Consus's count).
        #[arg(long, default_value = "owner", value_parser = ["owner", "conservative"])]
        learn: String,
        /// A DC out of contact this long is evicted by its peers, which then keep no
        /// history for it; it rejoins only rebuilt (`meridian node --rejoin`).
        #[arg(long, default_value_t = cluster::topology::DEFAULT_EVICT_AFTER_S)]
        evict_after_s: u64,
        /// Or sooner, once its peers hold this many protocol records of history for it
        /// (and it has been out of contact for 10 s).
        #[arg(long, default_value_t = cluster::topology::DEFAULT_MAX_HISTORY_RECORDS)]
        max_history_records: u64,
    },
    /// Change the emulated WAN of a running cluster (every node of the cluster file).
    Wan {
        #[arg(long)]
        cluster: PathBuf,
        /// New one-way delay (with --jitter-ms and --loss): for every pair, or only
        /// between the two DCs of --between.
        #[arg(long)]
        delay_ms: Option<u64>,
        #[arg(long, default_value_t = 0, requires = "delay_ms")]
        jitter_ms: u64,
        #[arg(long, default_value_t = 0.0, requires = "delay_ms")]
        loss: f64,
        /// Two DC ids, e.g. `0,2`.
        #[arg(long, value_delimiter = ',', requires = "delay_ms")]
        between: Option<Vec<u8>>,
        /// Cut this DC off from every other DC.
        #[arg(long, conflicts_with_all = ["heal", "deaf"])]
        cut: Option<u8>,
        /// Make this DC deaf: what the others send it is lost, what it sends arrives.
        #[arg(long, conflicts_with = "heal")]
        deaf: Option<u8>,
        /// Reconnect this DC.
        #[arg(long)]
        heal: Option<u8>,
        /// Set the clock of the DC given by --clock-dc this many milliseconds off its
        /// host's (0 puts it back): exercises the clock-offset check.
        #[arg(long, requires = "clock_dc", allow_negative_numbers = true)]
        clock_offset_ms: Option<i64>,
        #[arg(long, requires = "clock_offset_ms")]
        clock_dc: Option<u8>,
    },
    /// Run the cross-DC commit protocol in deterministic simulation: one JSON line per
    /// seed and a summary line; exits non-zero on any violation or stuck transaction.
    Sim {
        /// Number of data centers (odd).
        #[arg(long, default_value_t = 3)]
        dcs: usize,
        /// Number of seeds to run.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// First seed (a failing seed replays with `--first-seed K --seeds 1`).
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// One-way delay between data centers, in milliseconds (10% jitter added).
        #[arg(long, default_value_t = 50)]
        wan_delay_ms: u64,
        /// Message loss and duplication, DC crashes and isolation.
        #[arg(long)]
        faults: bool,
        /// `low` (500 keys) or `high` (5 keys).
        #[arg(long, default_value = "low", value_parser = ["low", "high"])]
        contention: String,
        /// `meridian`, or `2pc`: two-phase commit over per-shard Paxos groups (baseline).
        #[arg(long, default_value = "meridian", value_parser = ["meridian", "2pc"])]
        protocol: String,
        /// Transactions per seed.
        #[arg(long, default_value_t = 200)]
        txns: usize,
        /// Closed-loop clients per data center.
        #[arg(long, default_value_t = 4)]
        clients_per_dc: usize,
        /// Each DC's clock runs ahead of true time by a seeded offset of up to this many
        /// milliseconds; commit wait uses it as its bound.
        #[arg(long, default_value_t = 0)]
        clock_skew_ms: u64,
        /// Learning rule: `conservative` (3 delays) or `owner` (owner-counting: 2 delays
        /// with 3 DCs).
        #[arg(long, default_value = "conservative", value_parser = ["conservative", "owner"])]
        learn: String,
        /// Which keys a client touches: `spread` (any key) or `local` (only keys whose
        /// 2PC shard leader is in the client's DC: the baseline's best case).
        #[arg(long, default_value = "spread", value_parser = ["spread", "local"])]
        placement: String,
    },
    /// Jepsen-style test: start a local cluster, run a workload over the Postgres wire
    /// while a nemesis kills, pauses and cuts off DCs, check the history; one JSON
    /// summary line, the history in <data-dir>/history.json, exit status non-zero on
    /// any anomaly.
    Jepsen {
        /// `append` (list-append, Elle-style checker) or `bank` (constant total).
        #[arg(long, default_value = "append", value_parser = ["append", "bank"])]
        workload: String,
        /// Transactions to run (all clients together).
        #[arg(long, default_value_t = 10_000)]
        txns: u64,
        /// Closed-loop clients, spread over the DCs.
        #[arg(long, default_value_t = 9)]
        clients: usize,
        #[arg(long, default_value_t = 3)]
        dcs: usize,
        #[arg(long, default_value_t = 20)]
        wan_delay_ms: u64,
        /// Faults, comma-separated: kill, pause, partition; or `none`.
        #[arg(long, default_value = "kill,pause,partition")]
        nemesis: String,
        /// Seconds between the starts of two faults.
        #[arg(long, default_value_t = 8)]
        nemesis_interval_s: u64,
        /// A new directory for the cluster, its logs and history.json.
        #[arg(long)]
        data_dir: PathBuf,
        /// SQL port of the first DC (peers on + 1000).
        #[arg(long, default_value_t = 7433)]
        base_port: u16,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run sqllogictest files through the wire protocol, against `--url` or a fresh
    /// node started on a free port.
    Sqllogic {
        /// A Postgres-wire endpoint to test (e.g. a real PostgreSQL); default: start a node.
        #[arg(long)]
        url: Option<String>,
        /// Rewrite the expected results of the files (for our own files only).
        #[arg(long)]
        complete: bool,
        /// Known-failures list (`path:line  # reason` per line, e.g.
        /// sqllogic/known-failures.txt): listed records that fail do not fail the run,
        /// listed records that pass do.
        #[arg(long, value_name = "FILE")]
        known_failures: Option<PathBuf>,
        /// .slt files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The simulator boots thousands of simulated nodes and makes them fail on purpose:
    // only their errors show (RUST_LOG=warn or info to see more when replaying a seed).
    let default_level = if matches!(cli.command, Command::Sim { .. }) {
        "error"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Start {
            data_dir,
            sql_addr,
            query_memory_mib,
            block_cache_mib,
        } => runtime.block_on(node::run(node::NodeConfig {
            data_dir,
            sql_addr,
            query_memory_bytes: query_memory_mib << 20,
            block_cache_bytes: block_cache_mib << 20,
        })),
        Command::Node {
            cluster,
            join,
            dc,
            data_dir,
            clock_bound_ms,
            query_memory_mib,
            block_cache_mib,
            rejoin,
        } => {
            let topology = match (cluster, join) {
                (Some(file), _) => cluster::topology::Topology::load(&file)?,
                (None, Some(member)) => {
                    let topology = runtime.block_on(cluster::transport::fetch_topology(member))?;
                    std::fs::create_dir_all(&data_dir)?;
                    let kept = data_dir.join("cluster.toml");
                    std::fs::write(&kept, topology.to_toml())
                        .with_context(|| format!("cannot write {}", kept.display()))?;
                    tracing::info!(%member, file = %kept.display(), "joined: cluster file fetched");
                    topology
                }
                (None, None) => anyhow::bail!("give --cluster FILE or --join ADDRESS"),
            };
            runtime.block_on(cluster::run(cluster::ClusterNodeConfig {
                topology,
                dc,
                data_dir,
                query_memory_bytes: query_memory_mib << 20,
                block_cache_bytes: block_cache_mib << 20,
                clock_bound_us: clock_bound_ms * 1_000,
                rejoin,
            }))
        }
        Command::Demo {
            dcs,
            wan_delay_ms,
            base_port,
            data_dir,
            learn,
            evict_after_s,
            max_history_records,
        } => runtime.block_on(cluster::demo::run(cluster::demo::DemoConfig {
            dcs,
            wan_delay_ms,
            base_port,
            data_dir,
            evict_after_s,
            max_history_records,
            learn: if learn == "owner" {
                cluster::topology::Learn::Owner
            } else {
                cluster::topology::Learn::Conservative
            },
        })),
        Command::Wan {
            cluster,
            delay_ms,
            jitter_ms,
            loss,
            between,
            cut,
            deaf,
            heal,
            clock_offset_ms,
            clock_dc,
        } => {
            let topology = cluster::topology::Topology::load(&cluster)?;
            if delay_ms.is_none()
                && cut.is_none()
                && deaf.is_none()
                && heal.is_none()
                && clock_offset_ms.is_none()
            {
                anyhow::bail!(
                    "nothing to change: give --delay-ms, --cut, --deaf, --heal or --clock-offset-ms"
                );
            }
            if between.as_ref().is_some_and(|b| b.len() != 2) {
                anyhow::bail!("--between takes two DC ids, e.g. --between 0,2");
            }
            let request = cluster::transport::proto::WanRequest {
                cluster: topology.cluster.clone(),
                set_link: delay_ms.is_some(),
                pair: between.is_some(),
                a: between.as_ref().map_or(0, |b| u32::from(b[0])),
                b: between.as_ref().map_or(0, |b| u32::from(b[1])),
                delay_ms: delay_ms.unwrap_or(0),
                jitter_ms,
                loss,
                set_cut: cut.is_some() || deaf.is_some() || heal.is_some(),
                dc: u32::from(cut.or(deaf).or(heal).unwrap_or(0)),
                cut: cut.is_some() || deaf.is_some(),
                deaf: deaf.is_some(),
                set_clock: clock_offset_ms.is_some(),
                clock_dc: u32::from(clock_dc.unwrap_or(0)),
                clock_offset_ms: clock_offset_ms.unwrap_or(0),
            };
            let tls = cluster::tls::PeerTls::load(&topology, None)?;
            runtime.block_on(async {
                let mut failed = 0;
                for dc in &topology.dcs {
                    match cluster::transport::set_wan(dc, tls.as_ref(), request.clone()).await {
                        Ok(settings) => println!("DC {} ({}): {settings}", dc.id, dc.name),
                        Err(e) => {
                            failed += 1;
                            eprintln!("DC {} ({}) at {}: {e:#}", dc.id, dc.name, dc.peer);
                        }
                    }
                }
                if failed > 0 {
                    anyhow::bail!("{failed} node(s) did not take the change");
                }
                Ok(())
            })
        }
        Command::Sim {
            dcs,
            seeds,
            first_seed,
            wan_delay_ms,
            faults,
            contention,
            protocol,
            txns,
            clients_per_dc,
            clock_skew_ms,
            learn,
            placement,
        } => {
            let passed = sim::run(&sim::SimArgs {
                dcs,
                seeds,
                first_seed,
                wan_delay_ms,
                faults,
                high_contention: contention == "high",
                txns,
                clients_per_dc,
                owner_counting: learn == "owner",
                local_placement: placement == "local",
                clock_skew_ms,
                protocol: if protocol == "2pc" {
                    sim::node::Protocol::TwoPc
                } else {
                    sim::node::Protocol::Meridian
                },
            })?;
            if !passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Jepsen {
            workload,
            txns,
            clients,
            dcs,
            wan_delay_ms,
            nemesis,
            nemesis_interval_s,
            data_dir,
            base_port,
            seed,
        } => {
            let passed = runtime.block_on(jepsen::run(jepsen::JepsenConfig {
                dcs,
                wan_delay_ms,
                workload: if workload == "bank" {
                    jepsen::workload::Workload::Bank
                } else {
                    jepsen::workload::Workload::Append
                },
                txns,
                clients,
                faults: jepsen::nemesis::parse_faults(&nemesis).map_err(anyhow::Error::msg)?,
                interval: Duration::from_secs(nemesis_interval_s.max(1)),
                data_dir,
                base_port,
                seed,
            }))?;
            if !passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Sqllogic {
            url,
            complete,
            known_failures,
            files,
        } => {
            let passed = runtime.block_on(sqllogic_command(url, complete, known_failures, files));
            // Drop the runtime first: its tasks hold the node's store, which must close
            // before the process exits (else RocksDB's threads outlive its mutexes).
            drop(runtime);
            if !passed? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn sqllogic_command(
    url: Option<String>,
    complete: bool,
    known_failures: Option<PathBuf>,
    files: Vec<PathBuf>,
) -> anyhow::Result<bool> {
    let (url, node) = match url {
        Some(url) => (url, None),
        None => {
            let dir = tempfile_dir()?;
            let started = node::start_background(node::NodeConfig {
                data_dir: dir.clone(),
                sql_addr: "127.0.0.1:0".parse()?,
                query_memory_bytes: 256 << 20,
                block_cache_bytes: 64 << 20,
            })
            .await?;
            (
                format!("postgres://meridian@{}/postgres", started.addr),
                Some((started, dir)),
            )
        }
    };
    let summary = sqllogic::run(&sqllogic::RunnerConfig {
        url,
        files,
        engine_label: "postgresql".into(),
        complete,
        known_failures,
    })
    .await;
    // Also when the run could not start (missing file, bad known-failures list).
    if let Some((started, dir)) = node {
        started.stop().await;
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(summary?.failed == 0)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("meridian-sqllogic-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
