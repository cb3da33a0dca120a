//! Multi-host: one DC per Linux network namespace, joined by veth pairs to a bridge, each
//! node listening on its own address (10.77.<run>.<dc+1>), the WAN emulated on top.
//! Needs root and `ip`; where either is missing the test says so and fails only if
//! MERIDIAN_REQUIRE_NETNS=1 (CI sets nothing: it runs as root, so the test runs).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::connect;

/// Namespaces, links and processes of one run; removed on drop.
struct Hosts {
    tag: String,
    dcs: usize,
    nodes: Vec<Child>,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Hosts {
    fn ns(&self, dc: usize) -> String {
        format!("{}-{dc}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("{}-br", self.tag)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for child in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dc in 0..self.dcs {
            ip(&["netns", "del", &self.ns(dc)]);
        }
        ip(&["link", "del", &self.bridge()]);
    }
}

fn netns_available() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    if !ip(&["netns", "list"]) {
        return Err("`ip netns` is not available".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dc_per_network_namespace_over_real_addresses() {
    if let Err(why) = netns_available() {
        let required = std::env::var("MERIDIAN_REQUIRE_NETNS").is_ok_and(|v| v == "1");
        assert!(!required, "netns test required but {why}");
        eprintln!("SKIPPED one_dc_per_network_namespace_over_real_addresses: {why}");
        return;
    }
    let run = std::process::id() % 200 + 20;
    let mut hosts = Hosts {
        tag: format!("mrd{run}"),
        dcs: 3,
        nodes: Vec::new(),
    };
    let subnet = format!("10.77.{run}");
    let bridge = hosts.bridge();
    must(&["link", "add", &bridge, "type", "bridge"]);
    must(&["addr", "add", &format!("{subnet}.254/24"), "dev", &bridge]);
    must(&["link", "set", &bridge, "up"]);
    for dc in 0..hosts.dcs {
        let ns = hosts.ns(dc);
        let (outer, inner) = (
            format!("{}-v{dc}", hosts.tag),
            format!("{}-i{dc}", hosts.tag),
        );
        must(&["netns", "add", &ns]);
        must(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        must(&["link", "set", &inner, "netns", &ns]);
        must(&["link", "set", &outer, "master", &bridge]);
        must(&["link", "set", &outer, "up"]);
        let addr = format!("{subnet}.{}/24", dc + 1);
        must(&[
            "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inner,
        ]);
        must(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"]);
        must(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
    }

    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::from("cluster = \"netns\"\n[wan]\ndelay_ms = 10\n");
    for (dc, name) in ["frankfurt", "virginia", "tokyo"].iter().enumerate() {
        toml.push_str(&format!(
            "[[dc]]\nid = {dc}\nname = \"{name}\"\nsql = \"{subnet}.{h}:5433\"\npeer = \"{subnet}.{h}:6433\"\n",
            h = dc + 1
        ));
    }
    let cluster = dir.path().join("cluster.toml");
    std::fs::write(&cluster, toml).unwrap();
    for dc in 0..hosts.dcs {
        let child = Command::new("ip")
            .args(["netns", "exec", &hosts.ns(dc)])
            .arg(env!("CARGO_BIN_EXE_meridian"))
            .arg("node")
            .arg("--cluster")
            .arg(&cluster)
            .args(["--dc", &dc.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join(format!("dc{dc}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a node in its namespace");
        hosts.nodes.push(child);
    }
    let url = |dc: usize| format!("postgres://tester@{subnet}.{}:5433/postgres", dc + 1);
    for dc in 0..hosts.dcs {
        let addr = format!("{subnet}.{}:5433", dc + 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "DC {dc} did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let frankfurt = connect(&url(0)).await;
    frankfurt
        .batch_execute(
            "CREATE TABLE hosts (k int PRIMARY KEY, v text);
             INSERT INTO hosts VALUES (1, 'from the frankfurt namespace');",
        )
        .await
        .unwrap();
    let tokyo = connect(&url(2)).await;
    let v: String = tokyo
        .query_one("SELECT v FROM hosts WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "from the frankfurt namespace");
    tokyo
        .execute("UPDATE hosts SET v = 'tokyo' WHERE k = 1", &[])
        .await
        .unwrap();
    let virginia = connect(&url(1)).await;
    let v: String = virginia
        .query_one("SELECT v FROM hosts WHERE k = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "tokyo");
    // DC 1 hears the others over the namespaces' addresses.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = virginia.simple_query("SHOW DATA CENTERS").await.unwrap();
        let states: Vec<String> = rows
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some(r.get("state").unwrap().to_string())
                }
                _ => None,
            })
            .collect();
        if states == ["up", "local", "up"] {
            break;
        }
        assert!(Instant::now() < deadline, "states {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
