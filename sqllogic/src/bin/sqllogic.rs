//! Standalone runner: `sqllogic --url postgres://... --files sqllogic/slt [--complete]
//! [--known-failures sqllogic/known-failures.txt]`.
//! Exit status 0 when every file passed, 1 when a record failed, 2 on a usage/setup error.

use clap::Parser;

/// Run sqllogictest files against a Postgres-wire server (without --url:
/// postgres://postgres@127.0.0.1:5433/postgres, Meridian's default address).
///
/// Prints `PASS path (N records[, K known failures])` or `FAIL path (K of N records
/// failed): first error` per file, `known failures: K records in F files (see LIST)` if
/// any, and `N passed, N failed`. SQLLOGIC_VERBOSE=1 prints every failure to stderr;
/// SQLLOGIC_NO_SKIPS=1 disables the PostgreSQL skip list for SQLite's corpus;
/// SQLLOGIC_STATEMENT_TIMEOUT_SECS (default 120) bounds each statement.
#[derive(Debug, Parser)]
#[command(name = "sqllogic", version)]
struct Cli {
    #[command(flatten)]
    args: sqllogic::Args,
}

/// Meridian's default SQL address.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5433/postgres";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let url = cli
        .args
        .url
        .clone()
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let cfg = cli.args.config(url);
    // One thread: the client and its connection task run on the same thread, so a record's
    // round trip costs no cross-thread wake-ups (which dominate on a busy 2-core machine).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(sqllogic::run(&cfg)) {
        Ok(summary) if summary.ok() => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("sqllogic: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
