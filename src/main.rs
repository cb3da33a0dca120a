//! `meridian`: the one binary — runs a node, and the tools around it.
//!
//! ```text
//!   meridian start     [--data-dir DIR] [--sql-addr ADDR]     run a node (embedded default)
//!   meridian sqllogic  [--url URL] [--known-failures FILE] FILES…   run .slt files over the wire
//! ```
//!
//! The node runtime ([`node`]) owns all IO: the RocksDB directory, the SQL listener, the
//! signal handlers. The protocol and transaction cores below it are driven, not threaded.

mod node;
mod sim;

use std::net::SocketAddr;
use std::path::PathBuf;

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
