//! Whole-system tests over the PostgreSQL wire protocol against a real `meridian` process.

mod common;

use std::time::{Duration, Instant};

use common::{code, Node};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

fn values(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn tags(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_dml_queries_and_formatting() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT NOT NULL, balance NUMERIC(12,2) DEFAULT 0, active BOOLEAN);
         CREATE INDEX accounts_owner ON accounts (owner);",
    )
    .await
    .unwrap();
    let r = c
        .simple_query("INSERT INTO accounts VALUES (1, 'ann', 120.5, true), (2, 'bob', 7, false), (3, 'cy', DEFAULT, NULL)")
        .await
        .unwrap();
    assert_eq!(tags(&r), vec![3]);
    let r = c
        .simple_query("SELECT id, owner, balance, active FROM accounts ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        values(&r),
        vec![
            vec![
                Some("1".into()),
                Some("ann".into()),
                Some("120.50".into()),
                Some("t".into())
            ],
            vec![
                Some("2".into()),
                Some("bob".into()),
                Some("7.00".into()),
                Some("f".into())
            ],
            vec![
                Some("3".into()),
                Some("cy".into()),
                Some("0.00".into()),
                None
            ],
        ]
    );
    // Index lookup, aggregate, subquery DELETE that must touch only matching rows.
    let r = c
        .simple_query("SELECT count(*), sum(balance) FROM accounts WHERE owner = 'bob'")
        .await
        .unwrap();
    assert_eq!(
        values(&r),
        vec![vec![Some("1".into()), Some("7.00".into())]]
    );
    let r = c
        .simple_query(
            "DELETE FROM accounts WHERE id IN (SELECT id FROM accounts WHERE balance < 10)",
        )
        .await
        .unwrap();
    assert_eq!(tags(&r), vec![2]);
    let r = c.simple_query("SELECT id FROM accounts").await.unwrap();
    assert_eq!(values(&r), vec![vec![Some("1".into())]]);
    let r = c
        .simple_query("UPDATE accounts SET balance = balance * 2 WHERE id = 1 RETURNING balance")
        .await
        .unwrap();
    assert_eq!(values(&r), vec![vec![Some("241.00".into())]]);
    let r = c.simple_query("SELECT 1, 7 / 2, 2 ^ 10").await.unwrap();
    assert_eq!(
        values(&r),
        vec![vec![
            Some("1".into()),
            Some("3".into()),
            Some("1024".into())
        ]]
    );
    // Column names as PostgreSQL gives them.
    let stmt = c
        .prepare("SELECT 1, count(*) AS n, owner FROM accounts GROUP BY owner")
        .await
        .unwrap();
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, vec!["?column?", "n", "owner"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_postgres_sqlstates_and_blocks_fail() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL CHECK (v >= 0))")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO t VALUES (1, 1)")
        .await
        .unwrap();
    let cases = [
        ("SELEC 1", "42601"),
        ("SELECT * FROM missing", "42P01"),
        ("SELECT nope FROM t", "42703"),
        ("INSERT INTO t VALUES (1, 2)", "23505"),
        ("INSERT INTO t VALUES (2, NULL)", "23502"),
        ("INSERT INTO t VALUES (2, -1)", "23514"),
        ("INSERT INTO t VALUES ('x', 1)", "22P02"),
        ("SELECT 1 / 0", "22012"),
        ("CREATE TABLE t (a INT)", "42P07"),
        ("CREATE TABLE f (a INT REFERENCES t (id))", "0A000"),
    ];
    for (sql, expected) in cases {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(code(&e), expected, "{sql}: {e}");
    }
    // A failed statement fails the block until ROLLBACK.
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("INSERT INTO t VALUES (5, 5)")
        .await
        .unwrap();
    assert!(c.simple_query("SELECT 1 / 0").await.is_err());
    let e = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(code(&e), "25P02");
    c.batch_execute("ROLLBACK").await.unwrap();
    let r = c.simple_query("SELECT count(*) FROM t").await.unwrap();
    assert_eq!(
        values(&r),
        vec![vec![Some("1".into())]],
        "the failed block left nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_with_text_and_binary_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT, f DOUBLE PRECISION)")
        .await
        .unwrap();
    let insert = c
        .prepare("INSERT INTO kv VALUES ($1, $2, $3)")
        .await
        .unwrap();
    assert_eq!(insert.params(), &[Type::INT8, Type::TEXT, Type::FLOAT8]);
    for i in 0..20i64 {
        c.execute(&insert, &[&i, &format!("v{i}"), &(i as f64 / 4.0)])
            .await
            .unwrap();
    }
    let point = c.prepare("SELECT v, f FROM kv WHERE k = $1").await.unwrap();
    let row = c.query_one(&point, &[&7i64]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "v7");
    assert_eq!(row.get::<_, f64>(1), 1.75);
    let range = c
        .prepare("SELECT k FROM kv WHERE k >= $1 ORDER BY k DESC LIMIT 3")
        .await
        .unwrap();
    let ks: Vec<i64> = c
        .query(&range, &[&10i64])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ks, vec![19, 18, 17]);
    let update = c
        .prepare("UPDATE kv SET v = $2 WHERE k = $1")
        .await
        .unwrap();
    assert_eq!(c.execute(&update, &[&3i64, &"three"]).await.unwrap(), 1);
    assert_eq!(c.execute(&update, &[&300i64, &"none"]).await.unwrap(), 0);
    let row = c
        .query_one("SELECT v FROM kv WHERE k = 3", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE log (id INT PRIMARY KEY, payload TEXT)")
        .await
        .unwrap();
    let mut writers = Vec::new();
    for w in 0..4 {
        let url = node.url();
        writers.push(tokio::spawn(async move {
            let c = common::connect(&url).await;
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let id = w * 100_000 + i;
                match c.execute("INSERT INTO log VALUES ($1, 'x')", &[&id]).await {
                    Ok(_) => acked.push(id),
                    Err(_) => break, // the node died: outcome unknown for this one
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.kill9();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(!acked.is_empty(), "writers made progress before the kill");
    node.restart();
    let c = node.connect().await;
    let present: std::collections::HashSet<i32> = c
        .query("SELECT id FROM log", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<_> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged rows lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// 16 clients update 10 hot rows in random order inside transactions for 30 s: every
/// client finishes, the only errors are 40001, and the total is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_rows_under_contention_finish_without_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE hot (id INT PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .unwrap();
    for id in 0..10 {
        c.execute("INSERT INTO hot VALUES ($1, 0)", &[&id])
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut clients = Vec::new();
    for w in 0..16u64 {
        let url = node.url();
        clients.push(tokio::spawn(async move {
            let c = common::connect(&url).await;
            let mut seed = w.wrapping_mul(0x9e3779b97f4a7c15) | 1;
            let (mut committed, mut retried) = (0i64, 0u64);
            while Instant::now() < deadline {
                let mut ids = Vec::new();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ids.push((seed % 10) as i32);
                }
                let result: Result<(), tokio_postgres::Error> = async {
                    c.batch_execute("BEGIN").await?;
                    for id in &ids {
                        c.execute("UPDATE hot SET n = n + 1 WHERE id = $1", &[id])
                            .await?;
                    }
                    c.batch_execute("COMMIT").await
                }
                .await;
                match result {
                    Ok(()) => committed += ids.len() as i64,
                    Err(e) => {
                        assert_eq!(code(&e), "40001", "only serialization failures: {e}");
                        retried += 1;
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                }
            }
            (committed, retried)
        }));
    }
    let mut total = 0;
    for client in clients {
        let (committed, _) = tokio::time::timeout(Duration::from_secs(90), client)
            .await
            .expect("client finished")
            .unwrap();
        assert!(committed > 0, "every client commits something");
        total += committed;
    }
    let sum: i64 = c
        .query_one("SELECT CAST(sum(n) AS BIGINT) FROM hot", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, total);
    assert!(total > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_and_other_clients_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE keep (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO keep VALUES (1)")
        .await
        .unwrap();

    // Protocol garbage on a raw socket: the server closes that connection.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    raw.write_all(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 3, 1, 2, 3])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await;

    // Invalid UTF-8 in a query.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", node.port))
        .await
        .unwrap();
    let mut startup = Vec::new();
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.extend_from_slice(b"user\0t\0database\0postgres\0\0");
    let mut msg = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend(startup);
    raw.write_all(&msg).await.unwrap();
    let body = b"SELECT '\xff\xfe'\0";
    let mut q = vec![b'Q'];
    q.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    q.extend_from_slice(body);
    raw.write_all(&q).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await;

    // A 10 MB statement.
    let big = format!("SELECT '{}' AS big", "x".repeat(10 << 20));
    let r = c.simple_query(&big).await;
    if let Ok(rows) = &r {
        assert_eq!(values(rows)[0][0].as_ref().map(String::len), Some(10 << 20));
    }
    // Deep nesting.
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(c.simple_query(&deep).await.is_err());

    // The server still serves, nothing was lost.
    let c2 = node.connect().await;
    let r = c2.simple_query("SELECT id FROM keep").await.unwrap();
    assert_eq!(values(&r), vec![vec![Some("1".into())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_on_sigterm_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE s (id INT PRIMARY KEY); INSERT INTO s VALUES (1), (2)")
        .await
        .unwrap();
    drop(c);
    let status = node.terminate();
    assert!(status.success(), "exit status {status}");
    node.restart();
    let c = node.connect().await;
    let r = c.simple_query("SELECT count(*) FROM s").await.unwrap();
    assert_eq!(values(&r), vec![vec![Some("2".into())]]);
}

/// A statement over the per-query memory limit fails with 53200; the node and the data
/// stay fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_over_memory_limit_fails_with_53200() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(dir.path(), &["--query-memory-mib", "2"]);
    let c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE big (id INT PRIMARY KEY, s TEXT);
         INSERT INTO big SELECT x, repeat('x', 100) || x FROM generate_series(1, 50000) AS g(x)",
    )
    .await
    .unwrap();
    let e = c
        .simple_query("SELECT array_agg(s) FROM big")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "53200", "{e}");
    let r = c.simple_query("SELECT count(*) FROM big").await.unwrap();
    assert_eq!(values(&r), vec![vec![Some("50000".into())]]);
}

/// Results stream: a SELECT whose rows add up to far more than the node may hold (a
/// 1 GiB generated result, then a 200 MiB table scan after a restart) completes with the
/// node's peak resident memory well below the result's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_stream_to_the_client() {
    use futures::{pin_mut, TryStreamExt};
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start_with(dir.path(), &["--block-cache-mib", "16"]);
    let c = node.connect().await;

    async fn stream_bytes(c: &tokio_postgres::Client, sql: &str) -> (u64, u64) {
        let rows = c.query_raw(sql, std::iter::empty::<i32>()).await.unwrap();
        pin_mut!(rows);
        let (mut count, mut bytes) = (0u64, 0u64);
        while let Some(row) = rows.try_next().await.unwrap() {
            let pad: &str = row.get(1);
            count += 1;
            bytes += pad.len() as u64;
        }
        (count, bytes)
    }

    let (count, bytes) = stream_bytes(
        &c,
        "SELECT g, repeat('x', 1000) FROM generate_series(1, 1000000) AS s(g)",
    )
    .await;
    assert_eq!(count, 1_000_000);
    assert_eq!(bytes, 1_000_000_000);
    let peak = node.peak_rss_mib();
    eprintln!("peak RSS after streaming 1 GB: {peak} MiB");
    assert!(peak < 400, "peak RSS {peak} MiB streaming a 1 GB result");

    c.batch_execute("CREATE TABLE big (id INT PRIMARY KEY, pad TEXT NOT NULL)")
        .await
        .unwrap();
    for chunk in 0..10 {
        let (lo, hi) = (chunk * 20_000 + 1, (chunk + 1) * 20_000);
        c.batch_execute(&format!(
            "INSERT INTO big SELECT g, repeat('y', 1000) FROM generate_series({lo}, {hi}) AS s(g)"
        ))
        .await
        .unwrap();
    }
    drop(c);
    node.terminate();
    node.restart();
    let c = node.connect().await;
    let before = node.peak_rss_mib();
    let (count, bytes) = stream_bytes(&c, "SELECT id, pad FROM big").await;
    assert_eq!(count, 200_000);
    assert_eq!(bytes, 200_000_000);
    let peak = node.peak_rss_mib();
    eprintln!("peak RSS scanning 200 MB: {peak} MiB (from {before} MiB)");
    assert!(
        peak < before + 150,
        "peak RSS {peak} MiB (was {before}) scanning a 200 MB table"
    );
}

/// Execute with a row limit suspends the portal; later Executes continue where it
/// stopped, two portals interleave, and the end of the transaction closes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_return_rows_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let mut c = node.connect().await;
    c.batch_execute(
        "CREATE TABLE p (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO p SELECT g, 'v' || g FROM generate_series(1, 10) AS s(g)",
    )
    .await
    .unwrap();
    let t = c.transaction().await.unwrap();
    let by_id = t
        .prepare("SELECT id FROM p WHERE id > $1 ORDER BY id")
        .await
        .unwrap();
    let a = t.bind(&by_id, &[&0i32]).await.unwrap();
    let b = t.bind(&by_id, &[&5i32]).await.unwrap();
    let ids = |rows: Vec<tokio_postgres::Row>| -> Vec<i32> {
        rows.iter().map(|r| r.get::<_, i32>(0)).collect()
    };
    assert_eq!(ids(t.query_portal(&a, 4).await.unwrap()), vec![1, 2, 3, 4]);
    assert_eq!(ids(t.query_portal(&b, 3).await.unwrap()), vec![6, 7, 8]);
    assert_eq!(ids(t.query_portal(&a, 4).await.unwrap()), vec![5, 6, 7, 8]);
    assert_eq!(ids(t.query_portal(&b, 0).await.unwrap()), vec![9, 10]);
    assert_eq!(ids(t.query_portal(&a, 4).await.unwrap()), vec![9, 10]);
    assert!(t.query_portal(&a, 4).await.unwrap().is_empty());
    t.commit().await.unwrap();
    // The connection is still healthy and the next statement sees a fresh portal.
    let n: i64 = c
        .query_one("SELECT count(*) FROM p", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);
}

/// COPY FROM STDIN over the extended protocol (tokio-postgres): records split across
/// CopyData messages arrive whole; a failing COPY leaves the table as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_loads_rows_atomically() {
    use futures::SinkExt;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let c = node.connect().await;
    c.batch_execute("CREATE TABLE cp (id INT PRIMARY KEY, name TEXT, n BIGINT)")
        .await
        .unwrap();
    let mut data = String::new();
    for i in 1..=10_000 {
        data.push_str(&format!("{i}\tname {i}\\twith tab\t{}\n", i * 2));
    }
    let sink = c.copy_in("COPY cp FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    // Odd-sized chunks: records straddle CopyData messages.
    for chunk in data.as_bytes().chunks(777) {
        sink.send(std::io::Cursor::new(chunk.to_vec()))
            .await
            .unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 10_000);
    let row = c
        .query_one(
            "SELECT count(*), CAST(sum(n) AS BIGINT), max(name) FROM cp",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10_000);
    assert_eq!(row.get::<_, i64>(1), 10_000 * 10_001);
    assert_eq!(row.get::<_, &str>(2), "name 9999\twith tab");

    // A duplicate key in the middle: the whole COPY fails, nothing of it stays.
    let sink = c
        .copy_in("COPY cp (id, name) FROM STDIN (FORMAT csv)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(std::io::Cursor::new(b"20001,a\n5,dup\n20002,b\n".to_vec()))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(code(&err), "23505");
    let n: i64 = c
        .query_one("SELECT count(*) FROM cp", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10_000);
}
