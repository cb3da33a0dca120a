//! psql scripts run against `meridian start` and against PostgreSQL 15 itself: the
//! outputs (including each error's SQLSTATE) must be identical.

mod common;

use std::path::Path;
use std::process::Command;

use common::Node;

/// A throwaway PostgreSQL server (the reference oracle), run as the `postgres` user.
struct Reference {
    dir: tempfile::TempDir,
    port: u16,
    bindir: String,
}

impl Reference {
    fn start() -> Reference {
        let bindir = String::from_utf8(
            Command::new("pg_config")
                .arg("--bindir")
                .output()
                .expect(
                    "pg_config (postgresql-server-dev or postgresql installed by scripts/setup.sh)",
                )
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string();
        let bindir = if Path::new(&format!("{bindir}/initdb")).exists() {
            bindir
        } else {
            // Debian puts the server binaries in /usr/lib/postgresql/<major>/bin.
            let mut found = None;
            for entry in
                std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL server installed")
            {
                let p = entry.unwrap().path().join("bin");
                if p.join("initdb").exists() {
                    found = Some(p.display().to_string());
                }
            }
            found.expect("initdb found")
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let as_postgres = |args: &[&str]| {
            let status = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .status()
                .expect("runuser");
            assert!(status.success(), "{args:?} failed");
        };
        Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        Command::new("chmod")
            .args(["755"])
            .arg(dir.path())
            .status()
            .unwrap();
        let port = common::free_port();
        as_postgres(&[
            &format!("{bindir}/initdb"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-D",
            data.to_str().unwrap(),
        ]);
        let opts = format!(
            "-p {port} -k {} -c fsync=off -c listen_addresses=127.0.0.1",
            dir.path().display()
        );
        as_postgres(&[
            &format!("{bindir}/pg_ctl"),
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            dir.path().join("log").to_str().unwrap(),
            "-w",
            "start",
        ]);
        Reference { dir, port, bindir }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{}/pg_ctl", self.bindir))
            .args([
                "-D",
                self.dir.path().join("data").to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .status();
    }
}

fn run_psql(url: &str, script: &Path) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", url, "-f"])
        .arg(script)
        .output()
        .expect("psql installed");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    // Errors go to stderr as "psql:<file>:<line>: ERROR:  <sqlstate>"; keep them in order.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        text.push_str("stderr: ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[test]
fn psql_script_output_matches_postgresql() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/psql/basic.sql");
    let reference = Reference::start();
    let expected = run_psql(
        &format!("postgres://postgres@127.0.0.1:{}/postgres", reference.port),
        &script,
    );
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let actual = run_psql(&node.url(), &script);
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(20)
            .map(|(i, (e, a))| format!("line {}:\n  postgres: {e}\n  meridian: {a}", i + 1))
            .collect();
        panic!(
            "psql output differs ({} vs {} lines):\n{}\n--- meridian output ---\n{actual}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}
