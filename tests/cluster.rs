//! A real multi-DC cluster: `meridian demo` starts one node process per DC with emulated
//! WAN delay; clients connect to different DCs over the Postgres wire.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::connect;
use tokio_postgres::Client;

/// A running `meridian demo`; stopped (SIGTERM, which stops its nodes) on drop.
struct Demo {
    child: Child,
    dir: PathBuf,
    dcs: Vec<serde_json::Value>,
}

impl Demo {
    fn start(dir: &Path, dcs: usize, wan_delay_ms: u64) -> Demo {
        Demo::start_with(dir, dcs, wan_delay_ms, &[])
    }

    /// As [`Demo::start`], with more `meridian demo` arguments.
    fn start_with(dir: &Path, dcs: usize, wan_delay_ms: u64, args: &[&str]) -> Demo {
        let base = base_port(dcs);
        let child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["demo", "--dcs", &dcs.to_string()])
            .args(args)
            .args(["--wan-delay-ms", &wan_delay_ms.to_string()])
            .args(["--base-port", &base.to_string()])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start meridian demo");
        let json = dir.join("demo.json");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !json.exists() {
            assert!(Instant::now() < deadline, "demo did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(100)); // the file is written whole
        let dcs: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        Demo {
            child,
            dir: dir.to_path_buf(),
            dcs,
        }
    }

    fn url(&self, dc: usize) -> String {
        self.dcs[dc]["url"].as_str().unwrap().to_string()
    }

    async fn client(&self, dc: usize) -> Client {
        connect(&self.url(dc).replace("postgres://", "postgres://tester@")).await
    }

    fn pid(&self, dc: usize) -> u32 {
        self.dcs[dc]["pid"].as_u64().unwrap() as u32
    }

    /// Starts DC `dc`'s node again by hand (after it was killed), joining by the peer
    /// address of DC `member` instead of reading the cluster file.
    fn restart_node(&self, dc: usize, member: usize) -> Child {
        let child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .arg("node")
            .args(["--join", self.dcs[member]["peer"].as_str().unwrap()])
            .args(["--dc", &dc.to_string()])
            .arg("--data-dir")
            .arg(self.dir.join(format!("dc{dc}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("restart node");
        let addr = self
            .url(dc)
            .trim_start_matches("postgres://")
            .replace("/postgres", "");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "restarted node did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Ports for `dcs` DCs (SQL at base + i, peers at base + 1000 + i), below the kernel's
/// ephemeral range (32768 and up): a node killed and restarted must find its ports
/// free, and an outgoing connection may hold any ephemeral port.
fn base_port(dcs: usize) -> u16 {
    loop {
        let base = 20_000 + (std::process::id() as u16 ^ common::free_port()) % 10_000;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if (0..dcs as u16).all(|i| free(base + i) && free(base + 1000 + i)) {
            return base;
        }
    }
}

fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `SHOW DATA CENTERS` as (name, local, state) rows.
async fn data_centers(client: &Client) -> Vec<(String, bool, String)> {
    client
        .simple_query("SHOW DATA CENTERS")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.get("name").unwrap().to_string(),
                r.get("local").unwrap() == "t",
                r.get("state").unwrap().to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// Waits until DC `dc` shows `state` in `client`'s `SHOW DATA CENTERS`.
async fn wait_state(client: &Client, dc: usize, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = data_centers(client).await;
        if rows[dc].2 == state {
            return;
        }
        assert!(Instant::now() < deadline, "DC {dc} never {state}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn total(client: &Client) -> i64 {
    client
        .query_one("SELECT sum(bal)::bigint FROM acct", &[])
        .await
        .unwrap()
        .get(0)
}

async fn balance(client: &Client, id: i32) -> i32 {
    client
        .query_one("SELECT bal FROM acct WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

/// Issue 12, item 3: the protocol's timers came only from the WAN emulation, so across
/// real data centers 30 ms or more apart every remote record fell below the floor and
/// nothing committed. Now the timers follow measured round trips and the emulated delay
/// is hidden below the protocol, as a real network's is: at 150 ms one-way commits from
/// every DC succeed, and each node shows the round trip it measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_hold_on_a_150_ms_wan_the_protocol_is_not_told_of() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), 3, 150);
    let clients = [
        demo.client(0).await,
        demo.client(1).await,
        demo.client(2).await,
    ];
    clients[0]
        .batch_execute(
            "CREATE TABLE t (k int PRIMARY KEY, v int NOT NULL); \
             INSERT INTO t SELECT g, 0 FROM generate_series(1, 3) g",
        )
        .await
        .unwrap();
    for round in 0..3 {
        for (dc, client) in clients.iter().enumerate() {
            let n = client
                .execute("UPDATE t SET v = v + 1 WHERE k = $1", &[&(dc as i32 + 1)])
                .await
                .unwrap_or_else(|e| panic!("round {round}, DC {dc}: {e}"));
            assert_eq!(n, 1);
        }
    }
    let sum: i64 = clients[1]
        .query_one("SELECT sum(v)::bigint FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 9);
    let rows = clients[0].simple_query("SHOW DATA CENTERS").await.unwrap();
    let rtts: Vec<Option<f64>> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.get("rtt_ms").map(|v| v.parse().unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(rtts[0], None, "no round trip to itself");
    for rtt in &rtts[1..] {
        let rtt = rtt.expect("a round trip was measured");
        assert!((300.0..2000.0).contains(&rtt), "{rtt} ms");
    }
}

/// Issue 12, items 2 and 6: a DC restarted from an empty data directory, or from an
/// older copy of its own, has lost attempt numbers, votes and promises; its peers
/// recorded its directory's incarnation and latest start and refuse it, so it stops at
/// start and says why. With its own latest directory back it rejoins and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_restarted_from_an_empty_or_older_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), 3, 5);
    let c0 = demo.client(0).await;
    c0.batch_execute(
        "CREATE TABLE t (k int PRIMARY KEY, v int NOT NULL); INSERT INTO t VALUES (1, 0)",
    )
    .await
    .unwrap();
    kill9(demo.pid(2));
    let own = dir.path().join("dc2");
    let kept = dir.path().join("dc2.kept");
    let backup = dir.path().join("dc2.backup");
    copy_dir(&own, &backup);
    std::fs::rename(&own, &kept).unwrap();
    let stderr = start_refused(&dir.path().join("cluster.toml"), 2, &own);
    assert!(
        stderr.contains("its cluster knows another") && stderr.contains("another data directory"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&own).unwrap();
    std::fs::rename(&kept, &own).unwrap();
    let mut node = demo.restart_node(2, 0);
    let c2 = demo.client(2).await;
    c2.execute("UPDATE t SET v = v + 1 WHERE k = 1", &[])
        .await
        .unwrap();
    let v: i32 = c0
        .query_one("SELECT v FROM t WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 1);
    node.kill().unwrap();
    node.wait().unwrap();
    // An older copy of DC 2's own directory (taken while it was down, before its last
    // start) is refused as well: it has lost what DC 2 promised since.
    std::fs::remove_dir_all(&own).unwrap();
    std::fs::rename(&backup, &own).unwrap();
    let stderr = start_refused(&dir.path().join("cluster.toml"), 2, &own);
    assert!(stderr.contains("older copy"), "{stderr}");
}

/// Issue 12, item 6: a DC whose directory is lost is rebuilt from its peers with
/// `meridian node --rejoin` on an empty directory (docs/protocol.md §7.7): it holds what
/// the cluster committed, including while it was down, commits again, restarts from its
/// new directory like any node, and `--rejoin` refuses a directory that holds data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_that_lost_its_directory_is_rebuilt_from_its_peers() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), 3, 5);
    let cluster = dir.path().join("cluster.toml");
    let c0 = demo.client(0).await;
    create_t(&c0, 200).await;
    kill9(demo.pid(2));
    let own = dir.path().join("dc2");
    std::fs::remove_dir_all(&own).unwrap();
    // Written while DC 2 is gone.
    execute_retrying(&c0, "UPDATE t SET v = v + 1 WHERE k <= 50").await;
    let sql = demo
        .url(2)
        .trim_start_matches("postgres://")
        .replace("/postgres", "");
    let rejoin = |data_dir: &Path| {
        let mut command = node_command(&cluster, 2, data_dir);
        command.arg("--rejoin");
        command
    };
    let mut node = spawn_listening(rejoin(&own), 2, &sql);
    let c2 = demo.client(2).await;
    let totals = "SELECT count(*), sum(v) FROM t";
    let (n, sum): (i64, i64) = {
        let row = c2.query_one(totals, &[]).await.unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        (n, sum),
        (200, 50),
        "the rebuilt DC holds what was committed"
    );
    execute_retrying(&c2, "UPDATE t SET v = v + 10 WHERE k = 1").await;
    let v: i32 = c0
        .query_one("SELECT v FROM t WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 11, "a commit at the rebuilt DC is seen elsewhere");
    drop(c2);
    node.kill().unwrap();
    node.wait().unwrap();
    // Its directory holds data now: --rejoin refuses it, a plain restart takes it.
    let out = rejoin(&own).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("empty"),
        "{stderr}"
    );
    let mut node = start_node(&cluster, 2, &own, &sql);
    let c2 = demo.client(2).await;
    execute_retrying(&c2, "UPDATE t SET v = v + 1 WHERE k = 2").await;
    let sum: i64 = c0.query_one(totals, &[]).await.unwrap().get(1);
    assert_eq!(sum, 61);
    node.kill().unwrap();
    node.wait().unwrap();
}

/// Issue 12, items 6 and 7: peers keep what a down DC has not acknowledged, so an outage
/// grew their state without bound. A DC out of contact past `evict_after_s` is evicted
/// (`SHOW DATA CENTERS` says so) — but not two DCs whose link alone is cut, while a third
/// hears both (found by review) — and its history is no longer kept; it is then refused
/// with its old directory, with a message that says how to rebuild it, and rebuilt by
/// `--rejoin` it holds what was committed meanwhile and commits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_out_longer_than_its_peers_keep_history_is_evicted_then_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start_with(dir.path(), 3, 5, &["--evict-after-s", "10"]);
    let cluster = dir.path().join("cluster.toml");
    let c0 = demo.client(0).await;
    create_t(&c0, 100).await;
    // Only the link between DCs 0 and 1 is lost, for longer than the eviction period:
    // each still hears DC 2, which hears both, so neither is evicted.
    let wan = |args: &[&str]| meridian_wan(&cluster, args);
    wan(&["--delay-ms", "5", "--loss", "1", "--between", "0,1"]);
    execute_retrying(&c0, "UPDATE t SET v = v WHERE k = 1").await;
    tokio::time::sleep(Duration::from_secs(14)).await;
    wan(&["--delay-ms", "5", "--between", "0,1"]);
    let c1 = demo.client(1).await;
    wait_state(&c0, 1, "up").await;
    wait_state(&c1, 0, "up").await;
    for client in [&c0, &c1] {
        let states: Vec<String> = data_centers(client)
            .await
            .into_iter()
            .map(|r| r.2)
            .collect();
        assert!(!states.iter().any(|s| s == "evicted"), "{states:?}");
    }
    kill9(demo.pid(2));
    let (updates, _) = update_until_evicted(&c0, 2, Duration::from_secs(40), PAUSE).await;
    wait_state(&c1, 2, "evicted").await;
    let own = dir.path().join("dc2");
    let why = start_refused(&cluster, 2, &own);
    assert!(why.contains("evicted") && why.contains("--rejoin"), "{why}");
    std::fs::rename(&own, dir.path().join("dc2.evicted")).unwrap();
    let sql = demo
        .url(2)
        .trim_start_matches("postgres://")
        .replace("/postgres", "");
    let mut command = node_command(&cluster, 2, &own);
    command.arg("--rejoin");
    let mut node = spawn_listening(command, 2, &sql);
    let c2 = demo.client(2).await;
    let v: i32 = c2
        .query_one("SELECT v FROM t WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        v, updates,
        "the rebuilt DC holds what was committed while it was out"
    );
    execute_retrying(&c2, "UPDATE t SET v = v + 1 WHERE k = 2").await;
    let v: i32 = c0
        .query_one("SELECT v FROM t WHERE k = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 1, "a commit at the rebuilt DC is seen elsewhere");
    wait_state(&c0, 2, "up").await;
    node.kill().unwrap();
    node.wait().unwrap();
}

/// A busy cluster does not wait the whole eviction period (ten minutes by default)
/// holding history for a DC that is out: once the history passes its bound, a DC out of
/// contact for 10 s is evicted, and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_out_while_the_history_held_for_it_passes_its_bound_is_evicted_early() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start_with(dir.path(), 3, 5, &["--max-history-records", "200"]);
    let c0 = demo.client(0).await;
    create_t(&c0, 100).await;
    kill9(demo.pid(2));
    let (updates, _) = update_until_evicted(&c0, 2, Duration::from_secs(60), Duration::ZERO).await;
    assert!(updates >= 100, "evicted after only {updates} commits");
    let c1 = demo.client(1).await;
    wait_state(&c1, 2, "evicted").await;
    execute_retrying(&c0, "UPDATE t SET v = v + 1 WHERE k = 1").await;
}

/// A deaf DC (it sends, hears nothing) is heard by its peers but acknowledges nothing,
/// so the history they keep for it grows as if it were down: it is out of contact, and
/// evicted as a silent DC is. The cluster goes on committing without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_dc_is_evicted_as_a_silent_one_is() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start_with(dir.path(), 3, 5, &["--evict-after-s", "10"]);
    let cluster = dir.path().join("cluster.toml");
    let c0 = demo.client(0).await;
    create_t(&c0, 100).await;
    meridian_wan(&cluster, &["--deaf", "2"]);
    let (_, seen) = update_until_evicted(&c0, 2, Duration::from_secs(60), PAUSE).await;
    assert!(seen.contains("deaf"), "shown before its eviction: {seen:?}");
    let c1 = demo.client(1).await;
    wait_state(&c1, 2, "evicted").await;
    execute_retrying(&c1, "UPDATE t SET v = v + 1 WHERE k = 2").await;
}

/// Between two updates of [`update_until_evicted`], when it should not flood.
const PAUSE: Duration = Duration::from_millis(50);

/// Increments `t`'s row 1 through `client`, pausing `pause` after each commit, until
/// `client`'s node shows DC `dc` as `evicted`; fails if that takes longer than
/// `within`. Returns the commits made and every other state shown meanwhile.
async fn update_until_evicted(
    client: &Client,
    dc: usize,
    within: Duration,
    pause: Duration,
) -> (i32, BTreeSet<String>) {
    let start = Instant::now();
    let (mut updates, mut seen) = (0, BTreeSet::new());
    loop {
        let state = data_centers(client).await[dc].2.clone();
        if state == "evicted" {
            return (updates, seen);
        }
        seen.insert(state);
        assert!(
            start.elapsed() < within,
            "DC {dc} not evicted within {within:?} ({updates} commits held for it): \
             shown {seen:?}"
        );
        execute_retrying(client, "UPDATE t SET v = v + 1 WHERE k = 1").await;
        updates += 1;
        tokio::time::sleep(pause).await;
    }
}

/// Creates table `t (k int PRIMARY KEY, v int NOT NULL)` with rows 1..=`rows`, v = 0.
async fn create_t(client: &Client, rows: u32) {
    client
        .batch_execute(&format!(
            "CREATE TABLE t (k int PRIMARY KEY, v int NOT NULL);
             INSERT INTO t SELECT g, 0 FROM generate_series(1, {rows}) g"
        ))
        .await
        .unwrap();
}

/// Runs `statement`, retrying serialization failures (40001) as a client must.
async fn execute_retrying(client: &Client, statement: &str) {
    for _ in 0..50 {
        match client.execute(statement, &[]).await {
            Ok(_) => return,
            Err(e)
                if e.code()
                    == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{statement}: {e}"),
        }
    }
    panic!("{statement}: 50 serialization failures in a row");
}

/// Runs `meridian wan --cluster CLUSTER ARGS…`, which must succeed; returns its output.
fn meridian_wan(cluster: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("wan")
        .arg("--cluster")
        .arg(cluster)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts DC `dc`'s node on `data_dir`, which must refuse to start; returns its stderr.
fn start_refused(cluster: &Path, dc: usize, data_dir: &Path) -> String {
    let out = node_command(cluster, dc, data_dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the node started: {stderr}");
    stderr
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dc_serves_sql_and_sees_commits_acknowledged_in_another() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), 3, 20);
    assert_eq!(demo.dcs.len(), 3);
    for (i, dc) in demo.dcs.iter().enumerate() {
        assert_eq!(dc["dc"], i);
        assert!(dc["pid"].as_u64().unwrap() > 0);
    }
    let frankfurt = demo.client(0).await;
    frankfurt
        .batch_execute(
            "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
             INSERT INTO acct VALUES (1, 100), (2, 100), (3, 100);",
        )
        .await
        .unwrap();
    // A commit acknowledged in DC 0 is seen by a statement that starts later in DC 1.
    let virginia = demo.client(1).await;
    assert_eq!(total(&virginia).await, 300);
    // Every DC as DC 1 sees it.
    wait_state(&virginia, 0, "up").await;
    wait_state(&virginia, 2, "up").await;
    let dcs = data_centers(&virginia).await;
    let names: Vec<&str> = dcs.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(names, ["frankfurt", "virginia", "tokyo"]);
    assert_eq!(dcs[1], ("virginia".into(), true, "local".into()));
    // The commit notice reports the WAN delays and phases of a write (psql prints it).
    let out = Command::new("psql")
        .arg(demo.url(1).replace("postgres://", "postgres://tester@"))
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(["-c", "SET meridian.commit_trace = on"])
        .args(["-c", "UPDATE acct SET bal = bal + 0 WHERE id = 2"])
        .output()
        .expect("run psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("NOTICE:  execute") && stderr.contains("WAN delays, protocol"),
        "{stderr}"
    );
    let tokyo = demo.client(2).await;
    tokyo
        .execute("UPDATE acct SET bal = bal - 10 WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(balance(&frankfurt, 1).await, 90);
    // An explicit transaction block in DC 1: a transfer.
    virginia
        .batch_execute(
            "BEGIN;
             UPDATE acct SET bal = bal - 5 WHERE id = 2;
             UPDATE acct SET bal = bal + 5 WHERE id = 3;
             COMMIT;",
        )
        .await
        .unwrap();
    assert_eq!(balance(&tokyo, 3).await, 105);
    assert_eq!(total(&tokyo).await, 290);

    // The emulated WAN grows past what the timers were set for at start (the vote
    // floors' lag above all): the nodes retime and commits go on.
    let wan = |args: &[&str]| meridian_wan(&dir.path().join("cluster.toml"), args);
    wan(&["--delay-ms", "70"]);
    std::thread::sleep(Duration::from_millis(200));
    tokyo
        .execute("UPDATE acct SET bal = bal + 10 WHERE id = 1", &[])
        .await
        .expect("a commit after the WAN delay grew");
    let settings = wan(&["--delay-ms", "20", "--between", "0,2"]);
    assert!(settings.contains("0-2 20±0 ms"), "{settings}");
    wan(&["--delay-ms", "20"]);
    assert_eq!(balance(&virginia, 1).await, 100);

    // Kill DC 2 outright: the two others keep committing and reading.
    kill9(demo.pid(2));
    for i in 0..5 {
        frankfurt
            .execute("UPDATE acct SET bal = bal + 1 WHERE id = 1", &[])
            .await
            .unwrap_or_else(|e| panic!("commit {i} with DC 2 down: {e}"));
    }
    assert_eq!(balance(&virginia, 1).await, 105);
    wait_state(&frankfurt, 2, "unreachable").await;

    // DC 2 restarts from its disk and catches up.
    let mut restarted = demo.restart_node(2, 0);
    let tokyo = demo.client(2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokyo
            .query_one("SELECT bal FROM acct WHERE id = 1", &[])
            .await
        {
            Ok(row) if row.get::<_, i32>(0) == 105 => break,
            other => assert!(
                Instant::now() < deadline,
                "DC 2 did not catch up: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(total(&tokyo).await, 305);
    let _ = restarted.kill();
    let _ = restarted.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_peer_port_and_foreign_data_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), 3, 5);
    // A peer port spoken to in garbage: the node stays up and keeps committing.
    let peer_port = demo.dcs[1]["peer"].as_str().unwrap().to_string();
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&peer_port).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\xff garbage \x16\x03\x01");
        let mut s = std::net::TcpStream::connect(&peer_port).unwrap();
        let _ = s.write_all(&[0u8; 4096]);
    }
    let virginia = demo.client(1).await;
    virginia
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    kill9(demo.pid(0));
    std::thread::sleep(Duration::from_millis(300));
    // Two of three DCs still commit.
    virginia
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap();
    // A second node for DC 1 (which runs) is refused before it claims a directory.
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("node")
        .arg("--cluster")
        .arg(dir.path().join("cluster.toml"))
        .args(["--dc", "1"])
        .arg("--data-dir")
        .arg(dir.path().join("second-dc1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is another node of DC 1 running"),
        "{stderr}"
    );
    assert!(!dir.path().join("second-dc1").exists());
    // `meridian start` refuses a cluster's directory too.
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["start", "--data-dir"])
        .arg(dir.path().join("dc0"))
        .args(["--sql-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to a multi-DC cluster"));

    // DC 0's node (its ports are free) pointed at DC 2's directory: refused.
    kill9(demo.pid(2));
    std::thread::sleep(Duration::from_millis(300));
    let node = |data_dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_meridian"))
            .arg("node")
            .arg("--cluster")
            .arg(dir.path().join("cluster.toml"))
            .args(["--dc", "0"])
            .arg("--data-dir")
            .arg(data_dir)
            .output()
            .unwrap()
    };
    let out = node(&dir.path().join("dc2"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("belongs to DC 2 of cluster 'demo'"),
        "{stderr}"
    );
    // Nor does it adopt a single node's data.
    let single = dir.path().join("single");
    {
        let node = common::Node::start(&single);
        node.connect()
            .await
            .batch_execute("CREATE TABLE s (k int PRIMARY KEY)")
            .await
            .unwrap();
    }
    let out = node(&single);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("single-node Meridian"), "{stderr}");
}

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`<ca>.pem`/`.key`) and, signed by it, a certificate per name (`<name>.pem`/`.key`,
/// subjectAltName DNS:<name>).
fn certificates(dir: &Path, ca: &str, names: &[&str]) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let subject = format!("/CN={ca}");
    let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
    args.extend(ec);
    args.extend(["-keyout", &ca_key, "-out", &ca_pem]);
    openssl(dir, &args);
    for name in names {
        let (pem, key, csr) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
        );
        let (subject, ext) = (format!("/CN={name}"), format!("{name}.ext"));
        std::fs::write(dir.join(&ext), format!("subjectAltName=DNS:{name}\n")).unwrap();
        let mut args = vec!["req", "-subj", &subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
}

/// `meridian node` for DC `dc` of `cluster` on `data_dir`, logging warnings.
fn node_command(cluster: &Path, dc: usize, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
    command
        .arg("node")
        .arg("--cluster")
        .arg(cluster)
        .args(["--dc", &dc.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn");
    command
}

fn start_node(cluster: &Path, dc: usize, data_dir: &Path, sql: &str) -> Child {
    spawn_listening(node_command(cluster, dc, data_dir), dc, sql)
}

/// Spawns DC `dc`'s node `command` and waits until it listens on `sql`.
fn spawn_listening(mut command: Command, dc: usize, sql: &str) -> Child {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(sql).is_err() {
        assert!(Instant::now() < deadline, "DC {dc} did not listen on {sql}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_speak_mutual_tls_and_refuse_a_certificate_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    let names = ["frankfurt", "virginia", "tokyo"];
    certificates(certs, "ca", &names);
    certificates(certs, "rogue-ca", &["rogue"]);
    let base = base_port(3);
    let cluster_file = |dc1_cert: &str| {
        let mut toml =
            "cluster = \"tls\"\n[wan]\ndelay_ms = 5\n[tls]\nca = \"ca.pem\"\n".to_string();
        for (i, name) in names.iter().enumerate() {
            let cert = if i == 1 { dc1_cert } else { name };
            toml.push_str(&format!(
                "[[dc]]\nid = {i}\nname = \"{name}\"\nsql = \"127.0.0.1:{}\"\n\
                 peer = \"127.0.0.1:{}\"\ntls_cert = \"{cert}.pem\"\ntls_key = \"{cert}.key\"\n",
                base + i as u16,
                base + 1000 + i as u16
            ));
        }
        toml
    };
    let good = certs.join("cluster.toml");
    std::fs::write(&good, cluster_file("virginia")).unwrap();
    let sql = |dc: usize| format!("127.0.0.1:{}", base + dc as u16);
    let mut nodes: Vec<Child> = (0..3)
        .map(|dc| start_node(&good, dc, &certs.join(format!("dc{dc}")), &sql(dc)))
        .collect();
    let url = |dc: usize| format!("postgres://tester@{}/postgres", sql(dc));
    let frankfurt = connect(&url(0)).await;
    frankfurt
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let tokyo = connect(&url(2)).await;
    let n: i64 = tokyo
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the commit crossed DCs over TLS");
    wait_state(&frankfurt, 1, "up").await;

    // Virginia comes back with a certificate of another CA: nobody talks to it.
    let _ = nodes[1].kill();
    let _ = nodes[1].wait();
    let rogue = certs.join("rogue.toml");
    std::fs::write(&rogue, cluster_file("rogue")).unwrap();
    nodes[1] = start_node(&rogue, 1, &certs.join("dc1"), &sql(1));
    wait_state(&frankfurt, 1, "unreachable").await;
    let virginia = connect(&url(1)).await;
    wait_state(&virginia, 0, "unreachable").await;
    frankfurt
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .expect("two DCs of three still commit");
    for mut node in nodes {
        let _ = node.kill();
        let _ = node.wait();
    }
}

#[test]
fn meridian_wan_refuses_contradictory_or_incomplete_changes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        "cluster = \"x\"\n[[dc]]\nid = 0\nname = \"a\"\nsql = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    for (args, expect) in [
        (&["--cut", "0", "--heal", "0"][..], "cannot be used with"),
        (&["--loss", "0.5"][..], "--delay-ms"),
        (&["--between", "0,1"][..], "--delay-ms"),
        (&["--delay-ms", "5", "--between", "0"][..], "two DC ids"),
        (&[][..], "nothing to change"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .arg("wan")
            .arg("--cluster")
            .arg(&cluster)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

/// Issue 12, item 5, on real processes: DC 2's clock set 400 ms off (`meridian wan
/// --clock-offset-ms`, which the protocol, the sessions and the probes all read). DC 2 is
/// the outlier — off from both peers — so it refuses commits and fresh reads with
/// SQLSTATE 58000 and says why; the two others agree with each other, see DC 2 as
/// `clock offset`, and go on committing. With the clock back, DC 2 commits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_whose_clock_is_off_stops_coordinating_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), 3, 5);
    let c0 = demo.client(0).await;
    let c2 = demo.client(2).await;
    c0.batch_execute(
        "CREATE TABLE t (k int PRIMARY KEY, v int NOT NULL); INSERT INTO t VALUES (1, 0)",
    )
    .await
    .unwrap();
    let clock = |offset: &str| {
        let args = ["--clock-offset-ms", offset, "--clock-dc", "2"];
        meridian_wan(&dir.path().join("cluster.toml"), &args);
    };
    let update = "UPDATE t SET v = v + 1 WHERE k = 1";
    clock("400");
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        match c2.execute(update, &[]).await {
            Err(e) if e.code().is_some_and(|c| c.code() == "58000") => break e,
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("DC 2 still commits with its clock 400 ms off: {other:?}"),
        }
    };
    let why = refused.as_db_error().unwrap().message().to_string();
    assert!(why.contains("clock"), "{why}");
    let read = c2.query_one("SELECT v FROM t WHERE k = 1", &[]).await;
    assert_eq!(
        read.unwrap_err().code().map(|c| c.code().to_string()),
        Some("58000".to_string()),
        "a fresh read at the outlier is refused too"
    );
    wait_state(&c0, 2, "clock offset").await;
    c0.execute(update, &[])
        .await
        .expect("DC 0 agrees with DC 1 and goes on committing");
    clock("0");
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = c2.execute(update, &[]).await {
        assert!(Instant::now() < deadline, "DC 2 never commits again: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v: i32 = c0
        .query_one("SELECT v FROM t WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(v >= 2, "{v}");
}
