//! Golden scripts for the commit protocol: a small cluster of participants driven by
//! hand, printing every message sent, every piece of state persisted, every write
//! applied and every answer, so a reader can follow each path of docs/protocol.md
//! (fast path §5.2, recovery §7.2, restart §7.4, floors and the complete point §7.6).
//!
//! Scripts live in `replication/testdata/`; run `UPDATE_GOLDENFILES=1 cargo test
//! --release --workspace -- scripts::` to rewrite their expected output after a change,
//! and read the diff. The commands:
//!
//! ```text
//! cluster dcs=N [learn=owner|conservative] [floor_lag_ms=L] [delay_ms=D]
//!                                     a fresh cluster at time 0 whose messages take
//!                                     D ms (10 by default)
//! commit DC [reads=k@v,…] [range=a..b@v] [writes=k,…] [txn=T]
//!                                     the origin DC takes a commit (client c1, c2, …)
//! deliver [from=DC] [to=DC] [n=N]     D ms pass, then the messages in flight that
//!                                     match arrive, in order (not those they cause)
//! stabilize                           rounds of `deliver` until nothing is in flight
//! drop [from=DC] [to=DC]              loses the matching messages in flight
//! tick ms=N [DC…]                     time passes; the DCs given (all live ones by
//!                                     default) tick
//! crash DC / restart DC               loses the DC's volatile state / rebuilds it from
//!                                     what it persisted
//! cut DC / heal DC                    the DC's messages (both ways) are lost / delivered
//! inject from=DC to=DC closed=F [voters=N] | voter=V
//!                                     delivers a hand-made `Closed`, or a COMMIT
//!                                     `Vote2a` of voter V (malformed ones too)
//! status [DC…]                        outcomes, floor, complete point, attempts held
//! ```
//!
//! Every step is synced at once (the harness writes its persisted entries before it
//! queues the messages), so a crash loses exactly the volatile state.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use replication::{
    ClientResult, Closed, Config, DcId, Durable, DurableEntry, Envelope, LearnRule, Msg, Output,
    Participant, ReadEntry, ReadSpan, Record, ShowVersion, TxnKey, Writes,
};

test_each_file::test_each_path! { in "replication/testdata" as scripts => run_script }

fn run_script(path: &Path) {
    goldenscript::run(&mut Cluster::default(), path).expect("golden script failed");
}

const MS: u64 = 1_000;

#[derive(Default)]
struct Cluster {
    cfg: Vec<Config>,
    dcs: Vec<Option<Participant>>,
    /// What each DC persisted, by slot (later entries replace earlier ones).
    disk: Vec<BTreeMap<Vec<u8>, DurableEntry>>,
    in_flight: Vec<Envelope>,
    cut: BTreeSet<DcId>,
    /// One-way delay, µs.
    delay: u64,
    now: u64,
    clients: u64,
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

impl goldenscript::Runner for Cluster {
    fn run(&mut self, command: &goldenscript::Command) -> Result<String> {
        let mut args = command.consume_args();
        let mut out = String::new();
        match command.name.as_str() {
            "cluster" => {
                let dcs: usize = args.lookup_parse("dcs")?.unwrap_or(3);
                let learn = match args.lookup("learn").map(|a| a.value.as_str()) {
                    None | Some("owner") => LearnRule::OwnerCounting,
                    Some("conservative") => LearnRule::Conservative,
                    Some(other) => return Err(format!("unknown learn rule {other}").into()),
                };
                let floor_lag: u64 = args.lookup_parse("floor_lag_ms")?.unwrap_or(50);
                let delay: u64 = args.lookup_parse("delay_ms")?.unwrap_or(10);
                args.reject_rest()?;
                *self = Cluster {
                    delay: delay * MS,
                    ..Cluster::default()
                };
                for me in 0..dcs as DcId {
                    let cfg = if dcs == 1 {
                        Config::single()
                    } else {
                        Config {
                            dcs,
                            me,
                            learn,
                            retransmit_us: 100 * MS,
                            recovery_us: 200 * MS,
                            stagger_us: 100 * MS,
                            clock_bound_us: 0,
                            floor_lag_us: floor_lag * MS,
                            closed_period_us: 10 * MS,
                        }
                    };
                    self.dcs.push(Some(Participant::new(cfg.clone())));
                    self.cfg.push(cfg);
                    self.disk.push(BTreeMap::new());
                }
            }
            "commit" => {
                let dc = dc_arg(args.next_pos())?;
                let mut reads = Vec::new();
                if let Some(list) = args.lookup("reads") {
                    for item in list.value.split(',') {
                        let (key, lo) = item.split_once('@').ok_or("reads are key@version")?;
                        reads.push(ReadEntry {
                            span: ReadSpan::point(key.as_bytes()),
                            lo: parse_version(lo)?,
                        });
                    }
                }
                if let Some(range) = args.lookup("range") {
                    let (span, lo) = range.value.split_once('@').ok_or("range is a..b@version")?;
                    let (start, end) = span.split_once("..").ok_or("range is a..b@version")?;
                    reads.push(ReadEntry {
                        span: ReadSpan {
                            start: start.as_bytes().to_vec(),
                            end: Some(end.as_bytes().to_vec()),
                        },
                        lo: parse_version(lo)?,
                    });
                }
                let writes: Writes = args
                    .lookup("writes")
                    .map(|list| {
                        list.value
                            .split(',')
                            .map(|k| (k.as_bytes().to_vec(), Some(b"v".to_vec())))
                            .collect()
                    })
                    .unwrap_or_default();
                let txn: u64 = args.lookup_parse("txn")?.unwrap_or(self.clients + 1);
                args.reject_rest()?;
                self.clients += 1;
                let client = self.clients;
                let now = self.now;
                let p = self.live(dc)?;
                let output = p.commit(now, client, txn, reads, writes);
                self.carry_out(dc, output, &mut out);
            }
            "deliver" | "drop" => {
                let from = args
                    .lookup("from")
                    .map(|a| dc_value(&a.value))
                    .transpose()?;
                let to = args.lookup("to").map(|a| dc_value(&a.value)).transpose()?;
                let n: usize = args.lookup_parse("n")?.unwrap_or(usize::MAX);
                args.reject_rest()?;
                let matches =
                    |e: &Envelope| from.is_none_or(|f| e.from == f) && to.is_none_or(|t| e.to == t);
                let mut taken = Vec::new();
                let mut kept = Vec::new();
                for env in std::mem::take(&mut self.in_flight) {
                    if taken.len() < n && matches(&env) {
                        taken.push(env);
                    } else {
                        kept.push(env);
                    }
                }
                self.in_flight = kept;
                if command.name == "deliver" {
                    self.now += self.delay;
                }
                for env in taken {
                    if command.name == "drop" {
                        writeln!(out, "dropped {}", show_envelope(&env))?;
                    } else {
                        self.deliver(env, &mut out);
                    }
                }
            }
            "stabilize" => {
                args.reject_rest()?;
                let mut rounds = 0;
                while !self.in_flight.is_empty() {
                    rounds += 1;
                    if rounds > 100 {
                        return Err("no quiescence after 100 rounds".into());
                    }
                    self.now += self.delay;
                    for env in std::mem::take(&mut self.in_flight) {
                        self.deliver(env, &mut out);
                    }
                }
            }
            "tick" => {
                let ms: u64 = args.lookup_parse("ms")?.ok_or("tick needs ms=N")?;
                let dcs = self.listed(&mut args)?;
                args.reject_rest()?;
                self.now += ms * MS;
                for dc in dcs {
                    let now = self.now;
                    if let Some(p) = self.dcs[usize::from(dc)].as_mut() {
                        let output = p.tick(now);
                        self.carry_out(dc, output, &mut out);
                    }
                }
            }
            "crash" => {
                let dc = dc_arg(args.next_pos())?;
                args.reject_rest()?;
                self.dcs[usize::from(dc)] = None;
                writeln!(out, "dc{dc} crashed")?;
            }
            "restart" => {
                let dc = dc_arg(args.next_pos())?;
                args.reject_rest()?;
                let slot = usize::from(dc);
                let durable = Durable::from_entries(self.disk[slot].values().cloned());
                let (p, output) = Participant::restart(self.cfg[slot].clone(), durable, self.now);
                self.dcs[slot] = Some(p);
                writeln!(out, "dc{dc} restarted")?;
                self.carry_out(dc, output, &mut out);
            }
            "cut" | "heal" => {
                let dc = dc_arg(args.next_pos())?;
                args.reject_rest()?;
                if command.name == "cut" {
                    self.cut.insert(dc);
                } else {
                    self.cut.remove(&dc);
                }
            }
            "inject" => {
                let from = dc_value(&args.lookup("from").ok_or("inject needs from=")?.value)?;
                let to = dc_value(&args.lookup("to").ok_or("inject needs to=")?.value)?;
                let msg = if let Some(floor) = args.lookup("closed") {
                    let voters: usize = args.lookup_parse("voters")?.unwrap_or(self.dcs.len());
                    Msg::Closed(Closed {
                        floor: parse_version(&floor.value)?,
                        voted_upto: vec![0; voters],
                    })
                } else {
                    // A COMMIT vote of `voter` for the sender's first attempt.
                    let voter: DcId = args.lookup_parse("voter")?.ok_or("closed=F or voter=V")?;
                    Msg::Vote2a {
                        txn: TxnKey {
                            origin: from,
                            seq: 1,
                        },
                        voter,
                        ballot: replication::Ballot::own(voter),
                        vote: replication::Vote::Commit,
                    }
                };
                args.reject_rest()?;
                self.deliver(
                    Envelope {
                        from,
                        to,
                        depth: 1,
                        msg,
                    },
                    &mut out,
                );
            }
            "status" => {
                let dcs = self.listed(&mut args)?;
                args.reject_rest()?;
                for dc in dcs {
                    let Some(p) = &self.dcs[usize::from(dc)] else {
                        writeln!(out, "dc{dc}: down")?;
                        continue;
                    };
                    let d = p.durable();
                    let outcomes: Vec<String> = d
                        .outcomes()
                        .iter()
                        .map(|(k, o)| format!("{} {}", show_key(k), show_outcome(o)))
                        .collect();
                    writeln!(
                        out,
                        "dc{dc}: outcomes [{}] floor={} complete={} attempts_held={} retired={:?}",
                        outcomes.join(", "),
                        show_version(d.floor()),
                        show_version(p.complete()),
                        p.gauges().attempts,
                        d.retired()
                    )?;
                }
            }
            name => return Err(format!("unknown command {name}").into()),
        }
        Ok(out)
    }
}

impl Cluster {
    /// The DCs named by the remaining positional arguments; all of them if none.
    fn listed(&self, args: &mut goldenscript::ArgumentConsumer) -> Result<Vec<DcId>> {
        let listed: Vec<DcId> = args
            .rest_pos()
            .into_iter()
            .map(|a| dc_value(&a.value))
            .collect::<Result<_>>()?;
        Ok(if listed.is_empty() {
            (0..self.dcs.len() as DcId).collect()
        } else {
            listed
        })
    }

    fn live(&mut self, dc: DcId) -> Result<&mut Participant> {
        self.dcs
            .get_mut(usize::from(dc))
            .ok_or_else(|| format!("no DC {dc}"))?
            .as_mut()
            .ok_or_else(|| format!("dc{dc} is down").into())
    }

    fn deliver(&mut self, env: Envelope, out: &mut String) {
        let to = env.to;
        if self.cut.contains(&env.from) || self.cut.contains(&to) {
            let _ = writeln!(out, "lost {}", show_envelope(&env));
            return;
        }
        let now = self.now;
        let Some(Some(p)) = self.dcs.get_mut(usize::from(to)) else {
            let _ = writeln!(out, "lost {} (dc{to} is down)", show_envelope(&env));
            return;
        };
        let _ = writeln!(out, "{}", show_envelope(&env));
        let output = p.receive(now, env);
        self.carry_out(to, output, out);
    }

    /// Syncs the step's state, then releases its effects (the output contract).
    fn carry_out(&mut self, dc: DcId, output: Output, out: &mut String) {
        let mut line = |s: String| {
            let _ = writeln!(out, "  dc{dc} {s}");
        };
        for entry in &output.persist {
            line(format!("persist {}", show_entry(entry)));
            self.disk[usize::from(dc)].insert(entry.slot_key(), entry.clone());
        }
        if !output.forget.is_empty() {
            let slots: Vec<String> = output.forget.iter().map(|k| show_slot_key(k)).collect();
            line(format!("forget {}", slots.join(" ")));
            for k in &output.forget {
                self.disk[usize::from(dc)].remove(k);
            }
        }
        for (version, writes) in &output.apply {
            line(format!(
                "apply {} [{}]",
                show_version(*version),
                show_keys(writes)
            ));
        }
        if let Some(complete) = output.complete {
            line(format!("complete → {}", show_version(complete)));
        }
        for reply in &output.replies {
            line(match &reply.result {
                ClientResult::Committed {
                    version,
                    wan_delays,
                    ..
                } => format!(
                    "reply c{} COMMIT@{} wan_delays={wan_delays}",
                    reply.client,
                    show_version(*version)
                ),
                ClientResult::Aborted { reason } => {
                    format!("reply c{} ABORT ({reason})", reply.client)
                }
            });
        }
        for env in output.send {
            if !matches!(env.msg, Msg::Closed(_)) {
                line(format!("send {}", show_envelope(&env)));
            }
            self.in_flight.push(env);
        }
    }
}

fn dc_arg(arg: Option<&goldenscript::Argument>) -> Result<DcId> {
    dc_value(&arg.ok_or("a DC is needed")?.value)
}

fn dc_value(s: &str) -> Result<DcId> {
    Ok(s.trim_start_matches("dc").parse()?)
}

/// `µs.dc`, the way versions print; a plain number is taken as it is.
fn parse_version(s: &str) -> Result<u64> {
    Ok(match s.split_once('.') {
        Some((us, dc)) => (us.parse::<u64>()? << 8) | dc.parse::<u64>()?,
        None => s.parse()?,
    })
}

fn show_version(v: u64) -> String {
    ShowVersion(v).to_string()
}

fn show_key(k: &TxnKey) -> String {
    format!("{}/{}", k.origin, k.seq)
}

fn show_keys(writes: &Writes) -> String {
    writes
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

fn show_outcome(o: &replication::Outcome) -> String {
    match o {
        replication::Outcome::Committed { version } => format!("COMMIT@{}", show_version(*version)),
        replication::Outcome::Aborted => "ABORT".into(),
    }
}

fn show_record(r: &Record) -> String {
    let reads: Vec<String> = r
        .reads
        .iter()
        .map(|e| {
            let start = String::from_utf8_lossy(&e.span.start);
            let span = match (e.span.as_point(), &e.span.end) {
                (Some(_), _) => start.into_owned(),
                (None, Some(end)) => format!("{start}..{}", String::from_utf8_lossy(end)),
                (None, None) => format!("{start}.."),
            };
            format!("{span}@{}", show_version(e.lo))
        })
        .collect();
    format!(
        "{} v={} reads=[{}] writes=[{}]",
        show_key(&r.key),
        show_version(r.version),
        reads.join(","),
        show_keys(&r.writes)
    )
}

fn show_ballot(b: &replication::Ballot) -> String {
    format!("{}.{}", b.round, b.owner)
}

/// A slot's storage key as `tag origin/seq[:voter]` (DurableEntry::slot_key).
fn show_slot_key(key: &[u8]) -> String {
    match key {
        [tag, origin, rest @ ..] if rest.len() >= 8 => {
            let seq = u64::from_be_bytes(rest[..8].try_into().unwrap());
            let voter = rest.get(8).map_or(String::new(), |v| format!(":{v}"));
            format!("{}{origin}/{seq}{voter}", *tag as char)
        }
        _ => format!("{key:?}"),
    }
}

fn show_entry(e: &DurableEntry) -> String {
    match e {
        DurableEntry::Meta {
            next_seq,
            hlc,
            floor,
        } => format!(
            "meta seq={next_seq} hlc={} floor={}",
            show_version(*hlc),
            show_version(*floor)
        ),
        DurableEntry::Record(r) => format!("record {}", show_key(&r.key)),
        DurableEntry::OwnVote(k, v) => format!("own-vote {} {v:?}", show_key(k)),
        DurableEntry::Acceptor(k, voter, a) => format!(
            "acceptor {} voter={voter} accepted={}",
            show_key(k),
            a.accepted()
                .map_or("-".into(), |(b, v)| format!("{v:?}@{}", show_ballot(&b)))
        ),
        DurableEntry::Outcome(k, o) => format!("outcome {} {}", show_key(k), show_outcome(o)),
        DurableEntry::Retired(r) => format!("retired {r:?}"),
        DurableEntry::Fence(f) => format!("fence {f:?}"),
        DurableEntry::RetiredWrite(k, v) => format!(
            "retired-write {} {}",
            String::from_utf8_lossy(k),
            show_version(*v)
        ),
    }
}

fn show_envelope(e: &Envelope) -> String {
    let msg = match &e.msg {
        Msg::Record { record } => format!("Record {}", show_record(record)),
        Msg::Vote2a {
            txn,
            voter,
            ballot,
            vote,
        } => format!(
            "Vote2a {} voter={voter} ballot={} {vote:?}",
            show_key(txn),
            show_ballot(ballot)
        ),
        Msg::Accepted2b {
            txn,
            voter,
            ballot,
            vote,
        } => format!(
            "Accepted2b {} voter={voter} ballot={} {vote:?}",
            show_key(txn),
            show_ballot(ballot)
        ),
        Msg::Reject {
            txn,
            voter,
            promised,
        } => format!(
            "Reject {} voter={voter} promised={}",
            show_key(txn),
            show_ballot(promised)
        ),
        Msg::Prepare1a {
            txn,
            ballot,
            voters,
        } => format!(
            "Prepare1a {} ballot={} voters={voters:?}",
            show_key(txn),
            show_ballot(ballot)
        ),
        Msg::Promise1b {
            txn,
            ballot,
            accepted,
            record,
        } => {
            let accepted: Vec<String> = accepted
                .iter()
                .map(|(v, a)| match a {
                    Some((b, vote)) => format!("{v}:{vote:?}@{}", show_ballot(b)),
                    None => format!("{v}:-"),
                })
                .collect();
            format!(
                "Promise1b {} ballot={} accepted=[{}]{}",
                show_key(txn),
                show_ballot(ballot),
                accepted.join(","),
                if record.is_some() { " +record" } else { "" }
            )
        }
        Msg::Decision {
            txn,
            outcome,
            record,
        } => format!(
            "Decision {} {}{}",
            show_key(txn),
            show_outcome(outcome),
            if record.is_some() { " +record" } else { "" }
        ),
        Msg::DecisionAck { txn } => format!("DecisionAck {}", show_key(txn)),
        Msg::FetchRecord { txn } => format!("FetchRecord {}", show_key(txn)),
        Msg::Closed(c) => format!(
            "Closed floor={} voted_upto={:?}",
            show_version(c.floor),
            c.voted_upto
        ),
    };
    format!("dc{}→dc{} d={} {msg}", e.from, e.to, e.depth)
}
