//! A cluster of local `meridian node` processes, one per DC, under one data directory:
//! `cluster.toml`, `dc<i>/` (each node's store) and `dc<i>.log` (its output, appended
//! across restarts). Used by `meridian demo` and `meridian jepsen`, which also kill,
//! pause and restart nodes. Dropping it stops every node (SIGTERM, then SIGKILL after a
//! grace period).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::topology::Topology;

pub struct LocalCluster {
    pub topology: Topology,
    pub dir: PathBuf,
    pub cluster_file: PathBuf,
    exe: PathBuf,
    children: Vec<Option<Child>>,
}

impl LocalCluster {
    /// Writes the cluster file into `dir` (created if needed); starts nothing.
    pub fn create(topology: Topology, dir: &Path) -> anyhow::Result<LocalCluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let cluster_file = dir.join("cluster.toml");
        std::fs::write(&cluster_file, topology.to_toml())
            .with_context(|| format!("cannot write {}", cluster_file.display()))?;
        let exe = std::env::current_exe().context("cannot find the meridian binary")?;
        let children = topology.dcs.iter().map(|_| None).collect();
        Ok(LocalCluster {
            topology,
            dir,
            cluster_file,
            exe,
            children,
        })
    }

    pub fn log_path(&self, dc: usize) -> PathBuf {
        self.dir.join(format!("dc{dc}.log"))
    }

    /// Starts DC `dc`'s node (it must not be running).
    pub fn start(&mut self, dc: usize) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(dc))
            .with_context(|| format!("cannot open {}", self.log_path(dc).display()))?;
        let child = Command::new(&self.exe)
            .arg("node")
            .arg("--cluster")
            .arg(&self.cluster_file)
            .args(["--dc", &dc.to_string()])
            .arg("--data-dir")
            .arg(self.dir.join(format!("dc{dc}")))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start the node of DC {dc}"))?;
        self.children[dc] = Some(child);
        Ok(())
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for dc in 0..self.children.len() {
            self.start(dc)?;
        }
        Ok(())
    }

    /// Waits until DC `dc` accepts SQL connections; fails if its process exits.
    pub async fn wait_ready(&mut self, dc: usize, timeout: Duration) -> anyhow::Result<()> {
        let addr = self.topology.dcs[dc].sql;
        let deadline = Instant::now() + timeout;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if let Some(child) = &mut self.children[dc] {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the node of DC {dc} exited with {status}; see {}",
                        self.log_path(dc).display()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!("the node of DC {dc} did not accept SQL within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self, dc: usize) -> Option<u32> {
        self.children[dc].as_ref().map(Child::id)
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, `TERM`) to DC `dc`'s node.
    pub fn signal(&self, dc: usize, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .pid(dc)
            .with_context(|| format!("DC {dc} is not running"))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    /// kill -9 and reap.
    pub fn kill(&mut self, dc: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[dc].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM to every node, SIGKILL to those still running after 5 s.
    pub fn stop_all(&mut self) {
        for dc in 0..self.children.len() {
            if self.children[dc].is_some() {
                let _ = self.signal(dc, "CONT");
                let _ = self.signal(dc, "TERM");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in self
            .children
            .iter_mut()
            .filter_map(Option::take)
            .collect::<Vec<_>>()
        {
            let mut child = child;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
