//! sqllogic: runs sqllogictest files (SQLite's format, as extended by the `sqllogictest`
//! crate) against any Postgres-wire server, through the simple query protocol.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cfg = sqllogic::RunnerConfig {
//!     url: "postgres://postgres@127.0.0.1:5433/postgres".into(),
//!     files: vec!["sqllogic/slt".into()],
//!     engine_label: "postgresql".into(),
//!     complete: false,
//!     known_failures: Some("sqllogic/known-failures.txt".into()),
//! };
//! let summary = sqllogic::run(&cfg).await?;
//! assert!(summary.ok());
//! # Ok(()) }
//! ```
//!
//! Output: one line per file, `PASS path (N records)`, `PASS path (N records, K known
//! failures)` or `FAIL path (K of N records failed): first error`; then, if records on the
//! known-failures list failed, `known failures: K records in F files (see LIST)`; then
//! `N passed, N failed`. `SQLLOGIC_VERBOSE=1` also prints every failing record to stderr.
//!
//! The known-failures list (`RunnerConfig::known_failures`, see [`KnownFailures`]) names
//! records (`path:line  # reason`) that fail for features not built yet: they count as
//! known failures, not failures. A listed record that passes (`FIXED`) or a listed line
//! where no record ran (`STALE`) counts as a failure, so the list can only shrink.

mod cleanup;
mod db;
mod known;
mod skips;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sqllogictest::{
    default_normalizer, update_record_with_output, Condition, DefaultColumnType, Normalizer,
    QueryExpect, Record, RecordOutput, Runner,
};

pub use cleanup::Objects;
pub use db::{format_value, PgDb, PgError, DEFAULT_STATEMENT_TIMEOUT};
pub use known::{KnownFailure, KnownFailures};
pub use skips::{skip_reason, Skip, POSTGRESQL_SKIPS};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// A Postgres connection string, e.g. `postgres://postgres@127.0.0.1:5433/postgres`.
    pub url: String,
    /// Test files; a directory stands for every `*.slt` / `*.test` file below it, sorted.
    pub files: Vec<PathBuf>,
    /// The label `skipif` / `onlyif` records are evaluated against (`postgresql`).
    pub engine_label: String,
    /// Rewrite each file's expected output in place with what the server returned (for
    /// our own files only: review the diff).
    pub complete: bool,
    /// The known-failures list (`path:line  # reason` per line), if any: listed records
    /// that fail are known failures, listed records that pass are failures. Not used with
    /// `complete`.
    pub known_failures: Option<PathBuf>,
}

/// The outcome of one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub path: PathBuf,
    /// Statement and query records run (skipped records are not counted).
    pub records: usize,
    /// Records that failed unexpectedly, listed records that passed (`FIXED`) and listed
    /// lines where no record ran (`STALE`).
    pub failed: usize,
    /// Records that failed and are on the known-failures list.
    pub known: usize,
    /// The first failure, on one line, with its `file:line`.
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl FileResult {
    pub fn passed(&self) -> bool {
        self.failed == 0
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Files without unexpected failures (every record passed or is a known failure).
    pub passed: usize,
    /// Files with at least one failed record.
    pub failed: usize,
    /// Known failures (records) over all files.
    pub known: usize,
    /// Per file, in the order run.
    pub files: Vec<FileResult>,
}

impl Summary {
    /// True when no file failed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// Failed records over all files.
    pub fn failed_records(&self) -> usize {
        self.files.iter().map(|f| f.failed).sum()
    }
}

/// Command-line arguments shared by the standalone `sqllogic` binary and
/// `meridian sqllogic` (which starts a node itself when `--url` is absent).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Postgres connection string of the server under test.
    #[arg(long)]
    pub url: Option<String>,
    /// Test files or directories (directories: every *.slt and *.test below, sorted).
    #[arg(long, num_args = 1.., required = true)]
    pub files: Vec<PathBuf>,
    /// Engine label for `skipif`/`onlyif`.
    #[arg(long, default_value = "postgresql")]
    pub label: String,
    /// Rewrite expected results in place from the server's answers.
    #[arg(long)]
    pub complete: bool,
    /// Known-failures list (`path:line  # reason` per line, e.g.
    /// sqllogic/known-failures.txt): listed records that fail do not fail the run, listed
    /// records that pass do.
    #[arg(long, value_name = "FILE")]
    pub known_failures: Option<PathBuf>,
}

impl Args {
    /// The runner configuration for `url` (the `--url` given, or the node started for it).
    pub fn config(&self, url: impl Into<String>) -> RunnerConfig {
        RunnerConfig {
            url: url.into(),
            files: self.files.clone(),
            engine_label: self.label.clone(),
            complete: self.complete,
            known_failures: self.known_failures.clone(),
        }
    }
}

/// Waits until `url` accepts connections and answers `SELECT 1`, or `timeout` passes.
pub async fn wait_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let err = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                let task = db::spawn_connection(conn);
                let r = client.simple_query("SELECT 1").await;
                drop(client);
                let _ = task.await;
                match r {
                    Ok(_) => return Ok(()),
                    Err(e) => PgError::from(e),
                }
            }
            Err(e) => PgError::from(e),
        };
        if Instant::now() >= deadline {
            bail!("server at {url} not ready after {timeout:?}: {err}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs every file in `cfg.files`, printing one line per file, a `known failures: ...`
/// line if any listed record failed, and a closing `N passed, N failed` line. Fails only
/// when files are missing, the known-failures list cannot be read, or the server cannot be
/// reached at all; failing records are reported in the [`Summary`].
pub async fn run(cfg: &RunnerConfig) -> anyhow::Result<Summary> {
    let files = expand_files(&cfg.files)?;
    if files.is_empty() {
        bail!("no test files given");
    }
    let known = match &cfg.known_failures {
        Some(list) if !cfg.complete => KnownFailures::load(list)?,
        _ => KnownFailures::default(),
    };
    wait_ready(&cfg.url, Duration::from_secs(5))
        .await
        .context("cannot reach the server under test")?;
    let verbose = std::env::var("SQLLOGIC_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut summary = Summary::default();
    let mut known_files = 0;
    for path in files {
        let result = run_file(cfg, &path, verbose, &known).await;
        println!("{}", file_line(&result));
        let _ = std::io::stdout().flush();
        if result.passed() {
            summary.passed += 1;
        } else {
            summary.failed += 1;
        }
        if result.known > 0 {
            summary.known += result.known;
            known_files += 1;
        }
        summary.files.push(result);
    }
    if summary.known > 0 {
        let list = cfg
            .known_failures
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        println!(
            "known failures: {} records in {known_files} files (see {list})",
            summary.known
        );
    }
    println!("{} passed, {} failed", summary.passed, summary.failed);
    Ok(summary)
}

fn file_line(r: &FileResult) -> String {
    let path = r.path.display();
    if r.passed() && r.known > 0 {
        format!(
            "PASS {path} ({} records, {} known failures)",
            r.records, r.known
        )
    } else if r.passed() {
        format!("PASS {path} ({} records)", r.records)
    } else {
        format!(
            "FAIL {path} ({} of {} records failed): {}",
            r.failed,
            r.records,
            r.first_error.as_deref().unwrap_or("")
        )
    }
}

/// Expands directories into the `*.slt` / `*.test` files below them (sorted); plain files
/// are kept in the order given.
pub fn expand_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("slt") | Some("test")
            ) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("no such test file or directory: {}", p.display());
        }
    }
    Ok(out)
}

/// After this many statement timeouts in one file, its remaining records fail unrun.
const MAX_TIMEOUTS_PER_FILE: usize = 3;

/// The hash threshold a file starts with (a `hash-threshold N` record changes it):
/// 8 for `*.test` files, as SQLite's corpus was generated (`select1.test` relies on it
/// without saying so), 0 (never hash) for our `*.slt` files.
pub fn default_hash_threshold(path: &Path) -> usize {
    match path.extension().and_then(|e| e.to_str()) {
        Some("test") => 8,
        _ => 0,
    }
}

/// Whether `conditions` skip the record for an engine labelled `label`.
fn skipped(conditions: &[Condition], label: &str) -> bool {
    conditions.iter().any(|c| match c {
        Condition::OnlyIf { label: l } => l != label,
        Condition::SkipIf { label: l } => l == label,
    })
}

/// Reads and parses a file. SQLite's corpus puts comments after conditions
/// (`skipif mysql # not compatible`), which the crate's parser rejects: they are cut off.
/// `include` is not supported.
fn read_records(path: &Path) -> anyhow::Result<Vec<Record<DefaultColumnType>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut script = String::with_capacity(text.len());
    for line in text.lines() {
        let keyword = line.split_whitespace().next().unwrap_or("");
        let is_control = matches!(keyword, "skipif" | "onlyif" | "halt" | "hash-threshold");
        match line.find('#') {
            Some(i) if is_control => script.push_str(line[..i].trim_end()),
            _ => script.push_str(line),
        }
        script.push('\n');
    }
    sqllogictest::parse_with_name(&script, path.display().to_string())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Accepts the results row-wise (values of a row joined by spaces, one row per line) or,
/// as SQLite's corpus writes them, value-wise (one value per line). The column count is
/// checked separately (see [`column_count_validator`]).
fn validator(normalizer: Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    // The crate's own (also handles `<slt:ignore>`).
    if sqllogictest::default_validator(normalizer, actual, expected) {
        return true;
    }
    // Row-wise. Each row is normalized as a whole, so a value of only blanks (char(n)
    // padding) cannot leave a trailing space the expected line does not have.
    if actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(row, e)| normalizer(&row.join(" ")) == normalizer(e))
    {
        return true;
    }
    let values: usize = actual.iter().map(Vec::len).sum();
    values == expected.len()
        && actual
            .iter()
            .flatten()
            .zip(expected)
            .all(|(a, e)| normalizer(a) == normalizer(e))
}

/// The query must return as many columns as its type string has letters.
#[allow(clippy::ptr_arg)]
fn column_count_validator(
    actual: &Vec<DefaultColumnType>,
    expected: &Vec<DefaultColumnType>,
) -> bool {
    actual.len() == expected.len()
}

fn one_line(s: &str, max: usize) -> String {
    let joined = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    if joined.chars().count() > max {
        let cut: String = joined.chars().take(max).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

async fn cleanup(url: &str, objects: &Objects) {
    if objects.is_empty() {
        return;
    }
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return;
    };
    let task = db::spawn_connection(conn);
    for stmt in objects.drop_statements() {
        let _ = tokio::time::timeout(Duration::from_secs(30), client.simple_query(&stmt)).await;
    }
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

impl FileResult {
    /// Records an unexpected failure.
    fn fail(&mut self, message: impl FnOnce() -> String) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(one_line(&message(), 400));
        }
    }
}

/// Runs one file: a fresh runner (fresh connections) per file, objects the file creates
/// dropped before and after, every record run even after a failure.
async fn run_file(
    cfg: &RunnerConfig,
    path: &Path,
    verbose: bool,
    known: &KnownFailures,
) -> FileResult {
    let start = Instant::now();
    let mut result = FileResult {
        path: path.to_path_buf(),
        records: 0,
        failed: 0,
        known: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    // This file's entries of the known-failures list, and those whose record ran.
    let listed = known.for_file(&path.display().to_string());
    let mut ran_listed: BTreeSet<u32> = BTreeSet::new();
    let records = match read_records(path) {
        Ok(r) => r,
        Err(e) => {
            result.records = 1;
            result.failed = 1;
            result.first_error = Some(one_line(&format!("{e:#}"), 300));
            result.elapsed = start.elapsed();
            return result;
        }
    };
    let mut objects = Objects::default();
    for r in &records {
        match r {
            Record::Statement { sql, .. } | Record::Query { sql, .. } => objects.scan(sql),
            _ => {}
        }
    }
    cleanup(&cfg.url, &objects).await;

    let expected: db::ExpectedTypes = Arc::new(Mutex::new(Vec::new()));
    let url = cfg.url.clone();
    let shared = expected.clone();
    let mut runner = Runner::new(move || {
        let url = url.clone();
        let shared = shared.clone();
        async move { PgDb::connect(&url, shared).await }
    });
    runner.add_label(&cfg.engine_label);
    runner.with_hash_threshold(default_hash_threshold(path));
    runner.with_validator(validator);
    runner.with_column_validator(column_count_validator);

    let mut completed = String::new();
    let mut halted = false;
    // `skipif`/`onlyif` lines seen since the last statement/query: they also guard `halt`
    // (the crate would halt unconditionally).
    let mut conditions: Vec<Condition> = Vec::new();
    let mut timeouts = 0;
    for record in records {
        if halted {
            if cfg.complete {
                completed.push_str(&format!("{record}\n"));
            }
            continue;
        }
        match &record {
            Record::Condition(c) => conditions.push(c.clone()),
            Record::Halt { .. } => {
                halted = !skipped(&conditions, &cfg.engine_label);
                conditions.clear();
                if cfg.complete {
                    completed.push_str(&format!("{record}\n"));
                }
                continue;
            }
            Record::Statement { loc, .. } | Record::Query { loc, .. } => {
                conditions.clear();
                if let Some(reason) = skip_reason(&cfg.engine_label, loc.file(), loc.line()) {
                    if verbose {
                        eprintln!("skipped {loc}: {reason}");
                    }
                    if cfg.complete {
                        completed.push_str(&format!("{record}\n"));
                    }
                    continue;
                }
            }
            Record::Injected(_) => continue,
            _ => {}
        }
        let counted = matches!(record, Record::Statement { .. } | Record::Query { .. });
        // The record's `file:line` and its known-failures entry, if listed.
        let loc = match &record {
            Record::Statement { loc, .. } | Record::Query { loc, .. } => Some(loc.clone()),
            _ => None,
        };
        let entry = loc.as_ref().and_then(|l| listed.get(&l.line()).copied());
        *expected.lock().expect("poisoned") = match &record {
            Record::Query {
                expected: QueryExpect::Results { types, .. },
                ..
            } => types.clone(),
            _ => Vec::new(),
        };
        if cfg.complete {
            let output = runner.apply_record(record.clone()).await;
            if counted && !matches!(output, RecordOutput::Nothing) {
                result.records += 1;
            }
            let updated = update_record_with_output(
                &record,
                &output,
                " ",
                validator,
                default_normalizer,
                column_count_validator,
            )
            .unwrap_or(record);
            completed.push_str(&format!("{updated}\n"));
            continue;
        }
        if timeouts >= MAX_TIMEOUTS_PER_FILE {
            // The server hangs: fail the rest of the file quickly.
            if counted {
                result.records += 1;
                match (entry, &loc) {
                    (Some(entry), Some(loc)) => {
                        ran_listed.insert(entry.line);
                        result.known += 1;
                        if verbose {
                            eprintln!("known failure {loc} (not run: server timeouts)");
                        }
                    }
                    _ => result.failed += 1,
                }
            }
            continue;
        }
        match runner.run_async(record).await {
            Ok(RecordOutput::Nothing) => {}
            Ok(_) => {
                if counted {
                    result.records += 1;
                    if let (Some(entry), Some(loc)) = (entry, &loc) {
                        ran_listed.insert(entry.line);
                        let message = format!(
                            "{loc}: FIXED: remove it from the list (listed as a known \
                             failure: {})",
                            entry.reason
                        );
                        eprintln!("{message}");
                        result.fail(|| message);
                    }
                }
            }
            Err(e) => {
                result.records += 1;
                if e.to_string().contains(db::TIMEOUT_MESSAGE) {
                    timeouts += 1;
                }
                if let Some(entry) = entry {
                    ran_listed.insert(entry.line);
                    result.known += 1;
                    if verbose {
                        eprintln!("known failure ({}): {}", entry.reason, e.display(false));
                    }
                    continue;
                }
                if verbose {
                    eprintln!("{}", e.display(false));
                }
                result.fail(|| format!("{}: {}", e.location(), e.kind().display(false)));
            }
        }
    }
    if !cfg.complete {
        // Listed lines of this file where no record ran: the file changed under the list.
        for (line, entry) in &listed {
            if !ran_listed.contains(line) {
                let message = format!(
                    "{}:{line}: STALE: listed as a known failure, but no record ran at this \
                     line; fix or remove the entry",
                    path.display()
                );
                eprintln!("{message} ({})", entry.reason);
                result.fail(|| message);
            }
        }
    }
    runner.shutdown_async().await;
    cleanup(&cfg.url, &objects).await;

    if cfg.complete {
        let text = format!("{}\n", completed.trim_end());
        if let Err(e) = std::fs::write(path, text) {
            result.failed += 1;
            result.first_error = Some(format!("cannot rewrite {}: {e}", path.display()));
        }
    }
    result.elapsed = start.elapsed();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter()
            .map(|row| row.iter().map(|v| v.to_string()).collect())
            .collect()
    }

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn validator_accepts_rowwise_and_valuewise() {
        let actual = rows(&[&["1", "a b"], &["2", "c"]]);
        assert!(validator(
            default_normalizer,
            &actual,
            &lines(&["1 a b", "2 c"])
        ));
        assert!(validator(
            default_normalizer,
            &actual,
            &lines(&["1", "a b", "2", "c"])
        ));
        assert!(!validator(
            default_normalizer,
            &actual,
            &lines(&["1", "a b", "2"])
        ));
        assert!(!validator(
            default_normalizer,
            &actual,
            &lines(&["2 c", "1 a b"])
        ));
        let padded = rows(&[&["2", "(empty)", "    "]]);
        assert!(validator(
            default_normalizer,
            &padded,
            &lines(&["2 (empty)"])
        ));
    }

    #[test]
    fn conditions_guard_halt() {
        let only = |l: &str| Condition::OnlyIf { label: l.into() };
        let skip = |l: &str| Condition::SkipIf { label: l.into() };
        assert!(skipped(&[only("mssql")], "postgresql"));
        assert!(!skipped(&[skip("sqlite")], "postgresql"));
        assert!(skipped(&[skip("postgresql")], "postgresql"));
        assert!(!skipped(&[], "postgresql"));
    }
}
