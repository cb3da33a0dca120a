#!/usr/bin/env python3
"""Soak a local 3-DC cluster (issue 12): sustained UPDATE load from every DC, one DC
killed with SIGKILL and restarted from its directory every few minutes, and a report
every 15 s of what an operator watches.

Started by scripts/soak.sh (which checks the binary and pgbench). Each report line shows,
per DC, from the node's own log (it reports every 10 s): commits it coordinated in its
last 10 s and their protocol latency p50/p99 in ms, the protocol records it holds and the
store's estimated keys and the memory RocksDB reports (memtables, block cache, table
readers); and the node's RSS and data directory size in MiB. At the end it prints each
node's RSS range over the reports taken at least --warmup-minutes after the node (re)started.

With --evict-after-s below --down-s (or a --max-history-records reached while a DC is
down for more than 10 s), every killed DC is evicted by its peers while it is down (docs/protocol.md §7.8): its restart is refused, and the soak rebuilds it as an
operator would (its directory removed, `meridian node --rejoin` on an empty one).

Exit status 1 if a node reports a 10 s interval with no commit while a majority of DCs
was up through it (its first interval after each start, before its load begins, and
intervals with a kill or restart in them are not judged).
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

WINDOW_S = 15
DCS = 3
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--wan-delay-ms", type=int, default=10)
    p.add_argument("--clients", type=int, default=4, help="pgbench clients per DC")
    p.add_argument("--kill-every-s", type=int, default=180,
                   help="kill -9 one DC (in turn) this often; 0: never")
    p.add_argument("--down-s", type=int, default=10, help="how long a killed DC stays down")
    p.add_argument("--evict-after-s", type=int, default=600,
                   help="peers evict a DC out of contact this long (the cluster file's "
                        "evict_after_s)")
    p.add_argument("--max-history-records", type=int, default=100000,
                   help="or sooner, once its peers hold this many records for it (the "
                        "cluster file's max_history_records)")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--gc-ttl-s", type=int, default=60,
                   help="old versions are kept this long (MERIDIAN_GC_TTL_S; 4 h by default "
                        "in a node, short here so the soak shows collection)")
    p.add_argument("--warmup-minutes", type=float, default=5,
                   help="RSS is summarised over reports this long after a node's (re)start")
    p.add_argument("--bin", required=True)
    p.add_argument("--keep", help="copy the work directory (logs) here at the end")
    return p.parse_args()


class Cluster:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        # Below the kernel's ephemeral ports (32768 and up), so no outgoing connection
        # holds a node's port when it restarts.
        self.base = 20000 + random.randrange(10000)
        self.demo_dir = os.path.join(work, "demo")
        self.demo = subprocess.Popen(
            [args.bin, "demo", "--dcs", str(DCS), "--wan-delay-ms", str(args.wan_delay_ms),
             "--base-port", str(self.base), "--data-dir", self.demo_dir,
             "--evict-after-s", str(args.evict_after_s),
             "--max-history-records", str(args.max_history_records)],
            stdout=open(os.path.join(work, "demo.out"), "w"), stderr=subprocess.STDOUT)
        info = os.path.join(self.demo_dir, "demo.json")
        for _ in range(600):
            if os.path.exists(info) and os.path.getsize(info) > 0:
                break
            if self.demo.poll() is not None:
                sys.exit(open(os.path.join(work, "demo.out")).read())
            time.sleep(0.1)
        else:
            sys.exit("the demo did not start")
        self.pids = [e["pid"] for e in json.load(open(info))]
        self.started_at = [time.time()] * len(self.pids)
        self.restarted = {}  # dc -> Popen of a node this script restarted

    def url(self, dc):
        return f"postgres://bench@127.0.0.1:{self.base + dc}/postgres"

    def kill(self, dc):
        os.kill(self.pids[dc], signal.SIGKILL)
        if dc in self.restarted:
            self.restarted.pop(dc).wait()
        self.pids[dc] = None

    def start(self, dc, rejoin=False):
        log = open(os.path.join(self.demo_dir, f"dc{dc}.log"), "a")
        node = subprocess.Popen(
            [self.args.bin, "node", "--cluster", os.path.join(self.demo_dir, "cluster.toml"),
             "--dc", str(dc), "--data-dir", os.path.join(self.demo_dir, f"dc{dc}")]
            + (["--rejoin"] if rejoin else []),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.restarted[dc] = node
        self.pids[dc] = node.pid
        self.started_at[dc] = time.time()

    def ready(self, dc):
        return subprocess.run(["psql", "-X", "-q", "-c", "SELECT 1", self.url(dc)],
                              capture_output=True).returncode == 0

    def stop(self):
        for node in self.restarted.values():
            node.terminate()
        self.demo.terminate()
        for p in [*self.restarted.values(), self.demo]:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


class Load:
    """pgbench at one DC, restarted when its node comes back."""

    def __init__(self, cluster, dc, script):
        self.cluster, self.dc, self.script = cluster, dc, script
        self.proc = None
        self.runs = 0

    def start(self, until):
        seconds = int(until - time.time())
        if seconds < 2:
            return
        self.runs += 1
        self.proc = subprocess.Popen(
            ["pgbench", "-n", "-c", str(self.cluster.args.clients), "-j", "1",
             "-T", str(seconds), "--max-tries=100",
             "-f", self.script, self.cluster.url(self.dc)],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.cluster.work, f"pgbench_dc{self.dc}.err"), "a"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class NodeLog:
    """Reads a node's log incrementally for its 10 s reports."""

    STATS = re.compile(r"commit protocol, last (\d+) s committed=(\d+) aborted=(\d+) "
                       r"protocol_ms_p50=([\d.]+) protocol_ms_p99=([\d.]+)")
    GAUGE = re.compile(r"participant attempts=(\d+).* records=(\d+) store_keys=(\d+) "
                       r"store_memory_mib=(\d+)")
    STARTED = "meridian node started"

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.stats = None  # (committed, p50, p99) of the last report
        self.gauges = (0, 0, 0)  # (records, store keys, store memory MiB)
        self.since_start = 0  # reports since the node last started

    def poll(self):
        """New reports since the last call: [(time, committed)]."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        reports = []
        for line in ANSI.sub("", data[:cut].decode(errors="replace")).splitlines():
            if self.STARTED in line:
                self.since_start = 0
            elif m := self.STATS.search(line):
                self.since_start += 1
                self.stats = (int(m[2]), float(m[4]), float(m[5]))
                reports.append((time.time(), int(m[2]), self.since_start))
            elif m := self.GAUGE.search(line):
                self.gauges = (int(m[2]), int(m[3]), int(m[4]))
        return reports


def evicted(log_path):
    """Whether the node's log ends with its refusal as an evicted DC."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - 4096))
            return b"was evicted" in f.read()
    except OSError:
        return False


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, TypeError):
        pass
    return float("nan")


def dir_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / (1 << 20)


def main():
    args = parse_args()
    os.environ["MERIDIAN_GC_TTL_S"] = str(args.gc_ttl_s)
    work = tempfile.mkdtemp(prefix="meridian-soak-")
    cluster = Cluster(args, work)
    loads = []
    failed = []
    try:
        subprocess.run(["psql", "-X", "-q", cluster.url(0), "-c",
                        "CREATE TABLE t (k int PRIMARY KEY, v int NOT NULL)", "-c",
                        f"INSERT INTO t SELECT g, 0 FROM generate_series(1, {args.rows}) g"],
                       check=True)
        script = os.path.join(work, "update.sql")
        with open(script, "w") as f:
            f.write(f"\\set k random(1, {args.rows})\nUPDATE t SET v = v + 1 WHERE k = :k;\n")
        start = time.time()
        end = start + args.minutes * 60
        loads = [Load(cluster, dc, script) for dc in range(DCS)]
        for load in loads:
            load.start(end)
        logs = [NodeLog(os.path.join(cluster.demo_dir, f"dc{d}.log")) for d in range(DCS)]
        next_kill = start + args.kill_every_s if args.kill_every_s else float("inf")
        victim = 0
        down_until = None
        restarting = None  # when the victim's node was started again
        rebuilding = False  # whether it was refused as evicted and is being rebuilt
        # When the membership last changed (a kill or a restart): reports covering it
        # are not judged.
        changed_at = start
        next_report = start + WINDOW_S
        warm_rss = [[] for _ in range(DCS)]
        print(f"soak: 3 DCs, {args.wan_delay_ms} ms one-way, {args.clients} clients per DC, "
              f"{args.minutes:g} min, kill -9 every {args.kill_every_s or 'never'} s, "
              f"old versions kept {args.gc_ttl_s} s (work dir {work})", flush=True)
        print("  time " + " ".join(
            f"| dc{d} commits/10s  p50  p99 records keys(est) rocks  rss disk"
            for d in range(DCS)),
            flush=True)
        while time.time() < end:
            now = time.time()
            if down_until is None and now >= next_kill:
                print(f"  {now - start:4.0f}s kill -9 dc{victim}", flush=True)
                loads[victim].stop()
                cluster.kill(victim)
                down_until = now + args.down_s
                changed_at = now
            if down_until is not None and now >= down_until and restarting is None:
                cluster.start(victim)
                restarting = now
            if restarting is not None:
                node = cluster.restarted[victim]
                if node.poll() is not None and not rebuilding and evicted(logs[victim].path):
                    print(f"  {time.time() - start:4.0f}s dc{victim} refused: evicted; "
                          f"rebuilding it (--rejoin on an empty directory)", flush=True)
                    subprocess.run(["rm", "-rf", os.path.join(cluster.demo_dir, f"dc{victim}")])
                    cluster.start(victim, rejoin=True)
                    rebuilding = True
                    node = cluster.restarted[victim]
                if node.poll() is not None:
                    failed.append(f"dc{victim} did not restart (exit {node.returncode}; see its log)")
                    break
                if cluster.ready(victim):
                    how = "rebuilt" if rebuilding else "restarted"
                    print(f"  {time.time() - start:4.0f}s dc{victim} {how} after "
                          f"{args.down_s} s down, ready in {time.time() - restarting:.1f} s",
                          flush=True)
                    rebuilding = False
                    loads[victim].start(end)
                    victim = (victim + 1) % DCS
                    down_until = restarting = None
                    changed_at = time.time()
                    next_kill = changed_at + args.kill_every_s
                elif now - restarting > 60:
                    failed.append(f"dc{victim} was not ready 60 s after its restart")
                    break
            majority_up = sum(p is not None for p in cluster.pids) * 2 > DCS
            for d, log in enumerate(logs):
                for at, committed, nth in log.poll():
                    judged = nth > 1 and at - 11 > changed_at and majority_up
                    if committed == 0 and judged:
                        failed.append(f"dc{d} committed nothing in the 10 s before "
                                      f"{at - start:.0f} s")
            if now >= next_report:
                cols = []
                for d, log in enumerate(logs):
                    committed, p50, p99 = log.stats or (0, float("nan"), float("nan"))
                    records, keys, rocks = log.gauges
                    up = cluster.pids[d] is not None
                    rss = rss_mib(cluster.pids[d]) if up else float("nan")
                    if up and now - cluster.started_at[d] >= args.warmup_minutes * 60:
                        warm_rss[d].append(rss)
                    cols.append(
                        f"| {committed:15d} {p50:4.0f} {p99:4.0f} {records:7d} {keys:10d} "
                        f"{rocks:5d} {rss:4.0f} "
                        f"{dir_mib(os.path.join(cluster.demo_dir, f'dc{d}')):4.0f}")
                print(f"  {now - start:4.0f}s " + " ".join(cols), flush=True)
                next_report += WINDOW_S
            time.sleep(0.5)
    finally:
        for load in loads:
            load.stop()
        cluster.stop()
        if args.keep:
            subprocess.run(["cp", "-r", work, args.keep])
        subprocess.run(["rm", "-rf", work])
    for d in range(DCS):
        samples = warm_rss[d]
        if samples:
            mid = (max(samples) + min(samples)) / 2
            print(f"dc{d} RSS {args.warmup_minutes:g} min or more after a start: "
                  f"{min(samples):.0f}..{max(samples):.0f} MiB over {len(samples)} reports, "
                  f"±{100 * (max(samples) - mid) / mid:.1f}%")
        else:
            print(f"dc{d} RSS: no report {args.warmup_minutes:g} min after a start")
    for line in failed:
        print(f"FAIL: {line}")
    if failed:
        sys.exit(1)
    print("soak: every DC committed in every window")


if __name__ == "__main__":
    main()
