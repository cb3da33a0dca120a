//! Elle-style strict-serializability checker for list-append histories (Kingsbury & Alvaro,
//! "Elle", VLDB 2020). Elements are unique and lists only grow, so each read names exactly
//! which appends it saw and in which order: the dependency graph follows from observations.
//!
//! Observations are committed reads and the final read of every key. Over them we check
//! `duplicate-element`, `G1a` (an aborted append is visible), `incompatible-order` (a list is
//! not a prefix of its key's version order), `lost-append` (an append of a transaction that
//! took effect is missing from the final list), `G1b` (a read ends in an element its writer
//! followed with another append to that key) and `internal` (an element nobody appended to
//! that key, a committed transaction's read contradicting its own earlier reads and appends,
//! a reused element, an end before the begin). Then each strongly connected component of the
//! dependency graph is reported once, named by one cycle's edges: `G0` (ww only), `G1c`
//! (ww/wr), `G-single` (one rw), `G2` (more rw), with `-realtime` if the cycle needs rt.
//!
//! Inference:
//! - A transaction *took effect* if it committed, or its outcome is unknown and one of its
//!   appends is visible; only those are graph nodes.
//! - A key's version order is its longest observation, the final list winning ties. ww joins
//!   the writers of consecutive elements; wr runs from the writer of a read's last element to
//!   the reader (earlier elements are ordered by ww); rw runs from a reader to the writer of
//!   the first element it missed, and only for reads that are prefixes of the order.
//! - rt: T -> U when T committed and T.end < U.begin. An unknown outcome never sources rt: it
//!   may take effect after the client gave up. rt edges are implicit (T's successors are a
//!   suffix of the nodes sorted by begin): memory stays linear, time is O(n^2) at worst.
//! - An iterative Tarjan runs without rt (plain serializability violations), then with rt,
//!   reporting only components disjoint from the first pass's: `-realtime` means "serializable
//!   but not strictly". The cycle shown is a shortest one through the component's first
//!   transaction (BFS; per pair, ww beats wr beats rw beats rt). It is one witness, not
//!   necessarily the weakest anomaly in the component.
//!
//! Limits: no order is inferred beyond the longest observation (no cross-key inference), so
//! the checker aims at soundness, not completeness. Transactions are identified by position
//! in the history; ids only label reports. Output is deterministic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{self, Write as _};

/// A transaction's fate as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Committed,
    Aborted,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read of a whole list: the elements in order.
    Read { key: u64, list: Vec<u64> },
    /// Append of a unique element (no two appends anywhere in a history share `value`).
    Append { key: u64, value: u64 },
}

#[derive(Clone, Debug)]
pub struct TxnObs {
    pub id: u64,
    pub status: Status,
    /// Simulated time (µs) the client began the transaction.
    pub begin: u64,
    /// Simulated time the client got the outcome (None if never).
    pub end: Option<u64>,
    pub ops: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// "G0", "G1a", "G1b", "G1c", "G-single", "G2", "incompatible-order", "duplicate-element",
    /// "lost-append", "internal" — plus "-realtime" suffix on cycle kinds that need a
    /// real-time edge.
    pub kind: String,
    pub txns: Vec<u64>,
    pub detail: String,
}

/// Checks `history` as the module doc describes. `final_lists`: the final value of every key
/// as read after the run (authoritative order); a key it lacks counts as empty.
pub fn check(history: &[TxnObs], final_lists: &BTreeMap<u64, Vec<u64>>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let facts = Facts::gather(history, final_lists, &mut out);
    for (txn, record) in history.iter().enumerate() {
        if record.end.is_some_and(|end| end < record.begin) {
            let detail = format!("T{} ends before it begins", record.id);
            out.push(anomaly("internal", vec![record.id], detail));
        }
        if record.status == Status::Committed {
            check_own_reads(&facts, txn, &mut out);
        }
    }
    check_elements(&facts, &mut out);
    check_orders(&facts, &mut out);
    check_lost_appends(&facts, &mut out);
    check_intermediate_reads(&facts, &mut out);
    report_cycles(&facts, &Graph::build(&facts), &mut out);
    out
}

fn anomaly(kind: &str, txns: Vec<u64>, detail: String) -> Anomaly {
    let kind = kind.to_string();
    Anomaly { kind, txns, detail }
}

/// Who saw an element or a list: reader ids, `None` for the final read.
type Observers = BTreeSet<Option<u64>>;

/// Where an element was appended: key, transaction (history position), op index.
#[derive(Clone, Copy)]
struct Append {
    key: u64,
    txn: usize,
    op: usize,
}

/// One observed list of a key: a committed read, or the final read (`reader: None`).
struct Observation<'a> {
    key: u64,
    list: &'a [u64],
    reader: Option<usize>,
}

/// What the checks share, derived once from the history.
struct Facts<'a> {
    history: &'a [TxnObs],
    /// Element → its append (the last one, should an element be reused).
    appends: BTreeMap<u64, Append>,
    /// (transaction, key) → the last element that transaction appended to the key.
    last_append: BTreeMap<(usize, u64), u64>,
    /// The final read of every key (key order), then committed reads (history order).
    observations: Vec<Observation<'a>>,
    /// Key → version order: its longest observation, the final list winning ties.
    orders: BTreeMap<u64, &'a [u64]>,
    /// (key, element) → who saw the element in that key.
    seen_by: BTreeMap<(u64, u64), Observers>,
    /// Per transaction: committed, or unknown with a visible append.
    took_effect: Vec<bool>,
}

impl<'a> Facts<'a> {
    fn gather(
        history: &'a [TxnObs],
        final_lists: &'a BTreeMap<u64, Vec<u64>>,
        out: &mut Vec<Anomaly>,
    ) -> Self {
        let mut appends: BTreeMap<u64, Append> = BTreeMap::new();
        let mut last_append: BTreeMap<(usize, u64), u64> = BTreeMap::new();
        let mut keys: BTreeSet<u64> = final_lists.keys().copied().collect();
        let mut reads = Vec::new();
        for (txn, record) in history.iter().enumerate() {
            for (op, step) in record.ops.iter().enumerate() {
                match step {
                    Op::Append { key, value } => {
                        keys.insert(*key);
                        last_append.insert((txn, *key), *value);
                        let append = Append { key: *key, txn, op };
                        if let Some(earlier) = appends.insert(*value, append) {
                            let txns = vec![history[earlier.txn].id, record.id];
                            out.push(anomaly("internal", txns, format!("{value} appended twice")));
                        }
                    }
                    Op::Read { key, list } if record.status == Status::Committed => {
                        keys.insert(*key);
                        let (key, list, reader) = (*key, list.as_slice(), Some(txn));
                        reads.push(Observation { key, list, reader });
                    }
                    Op::Read { .. } => {}
                }
            }
        }
        let final_read = |key: u64| Observation {
            key,
            list: final_lists.get(&key).map_or(&[][..], Vec::as_slice),
            reader: None,
        };
        let mut observations: Vec<Observation<'a>> = keys.into_iter().map(final_read).collect();
        observations.extend(reads);

        let mut orders: BTreeMap<u64, &'a [u64]> = BTreeMap::new();
        let mut seen_by: BTreeMap<(u64, u64), Observers> = BTreeMap::new();
        for obs in &observations {
            let longest = orders.entry(obs.key).or_insert(obs.list);
            if obs.list.len() > longest.len() {
                *longest = obs.list;
            }
            let reader = obs.reader.map(|txn| history[txn].id);
            for &element in obs.list {
                seen_by
                    .entry((obs.key, element))
                    .or_default()
                    .insert(reader);
            }
        }

        let committed = |record: &TxnObs| record.status == Status::Committed;
        let mut took_effect: Vec<bool> = history.iter().map(committed).collect();
        for (&element, append) in &appends {
            let unknown = history[append.txn].status == Status::Unknown;
            if unknown && seen_by.contains_key(&(append.key, element)) {
                took_effect[append.txn] = true;
            }
        }
        Facts {
            history,
            appends,
            last_append,
            observations,
            orders,
            seen_by,
            took_effect,
        }
    }

    fn id(&self, txn: usize) -> u64 {
        self.history[txn].id
    }

    fn reader_id(&self, obs: &Observation<'_>) -> Option<u64> {
        obs.reader.map(|txn| self.id(txn))
    }

    /// The append of `element` to `key`, if some transaction made one.
    fn writer(&self, key: u64, element: u64) -> Option<Append> {
        let append = self.appends.get(&element).copied();
        append.filter(|append| append.key == key)
    }

    /// The graph node that appended `element` to `key`, if it took effect.
    fn node(&self, key: u64, element: u64) -> Option<usize> {
        let txn = self.writer(key, element).map(|append| append.txn);
        txn.filter(|&txn| self.took_effect[txn])
    }

    fn order(&self, key: u64) -> &'a [u64] {
        self.orders.get(&key).copied().unwrap_or(&[])
    }
}

/// A committed transaction's read of a key must agree with what it already knows of the key:
/// exactly its previous read plus its appends since, or, with no previous read, a list ending
/// with its appends so far. It must not contain the transaction's later appends.
fn check_own_reads(facts: &Facts<'_>, txn: usize, out: &mut Vec<Anomaly>) {
    let record = &facts.history[txn];
    // Key → (is the whole list known?, the whole list or its known tail).
    let mut known: BTreeMap<u64, (bool, Vec<u64>)> = BTreeMap::new();
    for (op, step) in record.ops.iter().enumerate() {
        match step {
            Op::Append { key, value } => known.entry(*key).or_default().1.push(*value),
            Op::Read { key, list } => {
                let (whole, expected) = match known.get(key) {
                    Some((whole, tail)) => (*whole, tail.as_slice()),
                    None => (false, &[][..]),
                };
                let later = |element: &&u64| {
                    let append = facts.writer(*key, **element);
                    append.is_some_and(|append| append.txn == txn && append.op > op)
                };
                let problem = if whole && list.as_slice() != expected {
                    let at = common_prefix(list, expected);
                    Some(format!("expected {}", excerpt(expected, at)))
                } else if !list.ends_with(expected) {
                    let at = expected.len().saturating_sub(1);
                    Some(format!(
                        "expected its own appends {}",
                        excerpt(expected, at)
                    ))
                } else {
                    let element = list.iter().find(later);
                    element.map(|element| format!("{element} is only appended later"))
                };
                if let Some(problem) = problem {
                    let seen = excerpt(list, list.len().saturating_sub(1));
                    let detail = format!("T{} read key {key} as {seen}: {problem}", record.id);
                    out.push(anomaly("internal", vec![record.id], detail));
                }
                known.insert(*key, (true, list.clone()));
            }
        }
    }
}

/// Every visible element must have been appended to its key by a transaction that did not
/// abort, and must occur at most once in each list.
fn check_elements(facts: &Facts<'_>, out: &mut Vec<Anomaly>) {
    for (&(key, element), seen) in &facts.seen_by {
        match facts.writer(key, element) {
            None => {
                let who = observers(seen);
                let detail = format!("key {key}: {element}, never appended, seen by {who}");
                out.push(anomaly("internal", reader_ids(seen), detail));
            }
            Some(append) if facts.history[append.txn].status == Status::Aborted => {
                let writer = facts.id(append.txn);
                let txns = [writer].into_iter().chain(reader_ids(seen)).collect();
                let who = observers(seen);
                let detail = format!("key {key}: {element} of aborted T{writer} seen by {who}");
                out.push(anomaly("G1a", txns, detail));
            }
            Some(_) => {}
        }
    }
    let mut repeated: BTreeMap<(u64, u64), Observers> = BTreeMap::new();
    for obs in &facts.observations {
        let mut once = BTreeSet::new();
        for &element in obs.list.iter().filter(|&&element| !once.insert(element)) {
            repeated
                .entry((obs.key, element))
                .or_default()
                .insert(facts.reader_id(obs));
        }
    }
    for ((key, element), seen) in repeated {
        let detail = format!(
            "key {key}: {element} repeated in a list seen by {}",
            observers(&seen)
        );
        out.push(anomaly("duplicate-element", reader_ids(&seen), detail));
    }
}

/// Every observed list of a key must be a prefix of the key's version order.
fn check_orders(facts: &Facts<'_>, out: &mut Vec<Anomaly>) {
    let mut conflicts: BTreeMap<(u64, &[u64]), Observers> = BTreeMap::new();
    for obs in &facts.observations {
        if !facts.order(obs.key).starts_with(obs.list) {
            let reader = facts.reader_id(obs);
            conflicts
                .entry((obs.key, obs.list))
                .or_default()
                .insert(reader);
        }
    }
    for ((key, list), seen) in conflicts {
        let order = facts.order(key);
        let at = common_prefix(list, order);
        let (who, list, order) = (observers(&seen), excerpt(list, at), excerpt(order, at));
        let detail = format!("key {key}: {who} saw {list}, the longest list is {order}");
        out.push(anomaly("incompatible-order", reader_ids(&seen), detail));
    }
}

/// Every append of a transaction that took effect must be in the final list of its key.
fn check_lost_appends(facts: &Facts<'_>, out: &mut Vec<Anomaly>) {
    let mut lost: BTreeMap<u64, (Vec<u64>, BTreeSet<u64>)> = BTreeMap::new();
    for (&element, append) in &facts.appends {
        let seen = facts.seen_by.get(&(append.key, element));
        let in_final = seen.is_some_and(|seen| seen.contains(&None));
        if facts.took_effect[append.txn] && !in_final {
            let (elements, txns) = lost.entry(append.key).or_default();
            elements.push(element);
            txns.insert(facts.id(append.txn));
        }
    }
    for (key, (elements, txns)) in lost {
        let detail = format!("key {key}: final list lacks {}", excerpt(&elements, 0));
        out.push(anomaly("lost-append", txns.into_iter().collect(), detail));
    }
}

/// A committed read must not end in an element its writer later followed with another append
/// to the same key (reading one's own intermediate state is `check_own_reads`' business).
fn check_intermediate_reads(facts: &Facts<'_>, out: &mut Vec<Anomaly>) {
    for obs in &facts.observations {
        let (Some(reader), Some(&last)) = (obs.reader, obs.list.last()) else {
            continue;
        };
        let Some(writer) = facts.writer(obs.key, last) else {
            continue;
        };
        let latest = facts.last_append.get(&(writer.txn, obs.key)).copied();
        if writer.txn != reader && latest != Some(last) {
            let (key, w, r) = (obs.key, facts.id(writer.txn), facts.id(reader));
            let detail = format!("T{r} read key {key} ending in {last}, not T{w}'s last append");
            out.push(anomaly("G1b", vec![w, r], detail));
        }
    }
}

/// A dependency edge, with the key it was observed on. The variant order is the preference
/// when a pair has several labels: the weakest anomaly reads clearest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Edge {
    Ww(u64),
    Wr(u64),
    Rw(u64),
    Rt,
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edge::Ww(key) => write!(f, "ww(k{key})"),
            Edge::Wr(key) => write!(f, "wr(k{key})"),
            Edge::Rw(key) => write!(f, "rw(k{key})"),
            Edge::Rt => f.write_str("rt"),
        }
    }
}

/// The dependency graph over history positions; only transactions that took effect have
/// edges. rt edges are implicit, see `successors`.
struct Graph {
    /// Node → successor → the preferred (least) ww/wr/rw label seen for the pair.
    explicit: Vec<BTreeMap<usize, Edge>>,
    /// Every node, sorted by (begin, position); `begins` holds the matching begin times.
    by_begin: Vec<usize>,
    begins: Vec<u64>,
    /// End time of each node that may source rt edges: committed, with end >= begin.
    rt_end: Vec<Option<u64>>,
}

impl Graph {
    fn build(facts: &Facts<'_>) -> Self {
        let history = facts.history;
        let mut by_begin: Vec<usize> = (0..history.len())
            .filter(|&t| facts.took_effect[t])
            .collect();
        by_begin.sort_by_key(|&txn| (history[txn].begin, txn));
        let rt_end = |record: &TxnObs| match (record.status, record.end) {
            (Status::Committed, Some(end)) if end >= record.begin => Some(end),
            _ => None,
        };
        let mut graph = Graph {
            explicit: vec![BTreeMap::new(); history.len()],
            begins: by_begin.iter().map(|&txn| history[txn].begin).collect(),
            by_begin,
            rt_end: history.iter().map(rt_end).collect(),
        };
        for (&key, order) in &facts.orders {
            for pair in order.windows(2) {
                if let (Some(a), Some(b)) = (facts.node(key, pair[0]), facts.node(key, pair[1])) {
                    graph.add(a, b, Edge::Ww(key));
                }
            }
        }
        for obs in &facts.observations {
            let Some(reader) = obs.reader else { continue };
            if let Some(writer) = obs.list.last().and_then(|&last| facts.node(obs.key, last)) {
                graph.add(writer, reader, Edge::Wr(obs.key));
            }
            let order = facts.order(obs.key);
            let missed = order
                .get(obs.list.len())
                .filter(|_| order.starts_with(obs.list));
            if let Some(writer) = missed.and_then(|&next| facts.node(obs.key, next)) {
                graph.add(reader, writer, Edge::Rw(obs.key));
            }
        }
        graph
    }

    fn add(&mut self, from: usize, to: usize, edge: Edge) {
        if let Some(successors) = self.explicit.get_mut(from).filter(|_| from != to) {
            let label = successors.entry(to).or_insert(edge);
            *label = edge.min(*label);
        }
    }

    /// `v`'s successors: explicit edges first, then, if `realtime`, every node that began
    /// after `v` ended.
    fn successors(&self, v: usize, realtime: bool) -> impl Iterator<Item = (usize, Edge)> + '_ {
        let later: &[usize] = match self.rt_end.get(v).copied().flatten() {
            Some(end) if realtime => {
                let first = self.begins.partition_point(|&begin| begin <= end);
                self.by_begin.get(first..).unwrap_or(&[])
            }
            _ => &[],
        };
        let explicit = self.explicit.get(v).into_iter().flatten();
        let explicit = explicit.map(|(&w, &edge)| (w, edge));
        explicit.chain(later.iter().map(|&w| (w, Edge::Rt)))
    }

    /// Nontrivial strongly connected components (Tarjan with an explicit call stack), each
    /// sorted, in order of their first member.
    fn components(&self, realtime: bool) -> Vec<Vec<usize>> {
        const UNSEEN: usize = usize::MAX;
        let n = self.explicit.len();
        let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0; n], vec![false; n]);
        let (mut stack, mut found, mut counter) = (Vec::new(), Vec::new(), 0);
        for &root in &self.by_begin {
            if index[root] != UNSEEN {
                continue;
            }
            (index[root], low[root], on_stack[root]) = (counter, counter, true);
            counter += 1;
            stack.push(root);
            let mut calls = vec![(root, self.successors(root, realtime))];
            while let Some(top) = calls.last_mut() {
                let v = top.0;
                match top.1.next() {
                    Some((w, _)) if index[w] == UNSEEN => {
                        (index[w], low[w], on_stack[w]) = (counter, counter, true);
                        counter += 1;
                        stack.push(w);
                        calls.push((w, self.successors(w, realtime)));
                    }
                    Some((w, _)) if on_stack[w] => low[v] = low[v].min(index[w]),
                    Some(_) => {}
                    None => {
                        calls.pop();
                        if let Some(&(parent, _)) = calls.last() {
                            low[parent] = low[parent].min(low[v]);
                        }
                        if low[v] == index[v] {
                            let mut component = Vec::new();
                            while let Some(w) = stack.pop() {
                                on_stack[w] = false;
                                component.push(w);
                                if w == v {
                                    break;
                                }
                            }
                            if component.len() > 1 {
                                component.sort_unstable();
                                found.push(component);
                            }
                        }
                    }
                }
            }
        }
        found.sort();
        found
    }

    /// A shortest cycle through the component's first member, inside the component, as
    /// (node, edge to the next node) steps; the last step leads back to the first node.
    fn cycle_through(&self, component: &[usize], realtime: bool) -> Option<Vec<(usize, Edge)>> {
        let members: BTreeSet<usize> = component.iter().copied().collect();
        let &start = component.first()?;
        let mut parent: BTreeMap<usize, (usize, Edge)> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            for (w, edge) in self.successors(v, realtime) {
                if w == start {
                    let mut steps = vec![(v, edge)];
                    let mut at = v;
                    while at != start {
                        let &(previous, into) = parent.get(&at)?;
                        steps.push((previous, into));
                        at = previous;
                    }
                    steps.reverse();
                    return Some(steps);
                }
                if members.contains(&w) && !parent.contains_key(&w) {
                    parent.insert(w, (v, edge));
                    queue.push_back(w);
                }
            }
        }
        None
    }
}

/// One cycle per component: first those without rt edges, then real-time ones among
/// transactions in no plain cycle.
fn report_cycles(facts: &Facts<'_>, graph: &Graph, out: &mut Vec<Anomaly>) {
    let mut explained = BTreeSet::new();
    for component in graph.components(false) {
        out.push(describe_cycle(facts, graph, &component, false));
        explained.extend(component);
    }
    for component in graph.components(true) {
        if !component.iter().any(|v| explained.contains(v)) {
            out.push(describe_cycle(facts, graph, &component, true));
        }
    }
}

fn describe_cycle(
    facts: &Facts<'_>,
    graph: &Graph,
    component: &[usize],
    realtime: bool,
) -> Anomaly {
    let Some(steps) = graph.cycle_through(component, realtime) else {
        let txns = component.iter().map(|&v| facts.id(v)).collect();
        return anomaly(
            "internal",
            txns,
            "checker: component without a cycle".into(),
        );
    };
    let txns: Vec<u64> = steps.iter().map(|&(v, _)| facts.id(v)).collect();
    let mut detail = String::new();
    for (&(_, edge), id) in steps.iter().zip(&txns) {
        let _ = write!(detail, "T{id} -{edge}-> ");
    }
    if let Some(first) = txns.first() {
        let _ = write!(detail, "T{first}");
    }
    anomaly(&classify(&steps), txns, detail)
}

/// G0 (ww only), G1c (ww/wr), G-single (one rw), G2 (more rw); `-realtime` if rt is needed.
fn classify(steps: &[(usize, Edge)]) -> String {
    let rw = steps
        .iter()
        .filter(|(_, edge)| matches!(edge, Edge::Rw(_)))
        .count();
    let wr = steps.iter().any(|(_, edge)| matches!(edge, Edge::Wr(_)));
    let rt = steps.iter().any(|(_, edge)| matches!(edge, Edge::Rt));
    let base = match (rw, wr) {
        (0, false) => "G0",
        (0, true) => "G1c",
        (1, _) => "G-single",
        _ => "G2",
    };
    if rt {
        format!("{base}-realtime")
    } else {
        base.to_string()
    }
}

fn reader_ids(seen: &Observers) -> Vec<u64> {
    seen.iter().flatten().copied().collect()
}

fn observers(seen: &Observers) -> String {
    let name = |reader: &Option<u64>| match reader {
        Some(id) => format!("T{id}"),
        None => "the final read".to_string(),
    };
    seen.iter().map(name).collect::<Vec<_>>().join(", ")
}

fn common_prefix(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// `list` shown around index `at`, elided elsewhere: `[..., 4, 7, 9, ...] (len 40)`.
fn excerpt(list: &[u64], at: usize) -> String {
    let from = at.saturating_sub(3).min(list.len());
    let to = at.saturating_add(5).min(list.len());
    let shown: Vec<String> = list[from..to].iter().map(u64::to_string).collect();
    let shown = shown.join(", ");
    if from == 0 && to == list.len() {
        return format!("[{shown}]");
    }
    let head = if from > 0 { "..., " } else { "" };
    let tail = if to < list.len() { ", ..." } else { "" };
    format!("[{head}{shown}{tail}] (len {})", list.len())
}

#[cfg(test)]
mod tests {
    use super::Status::{Aborted, Committed, Unknown};
    use super::*;

    fn txn(id: u64, status: Status, (begin, end): (u64, u64), ops: Vec<Op>) -> TxnObs {
        let end = Some(end);
        TxnObs {
            id,
            status,
            begin,
            end,
            ops,
        }
    }

    fn read(key: u64, list: &[u64]) -> Op {
        let list = list.to_vec();
        Op::Read { key, list }
    }

    fn append(key: u64, value: u64) -> Op {
        Op::Append { key, value }
    }

    fn run(history: &[TxnObs], finals: &[(u64, Vec<u64>)]) -> Vec<Anomaly> {
        check(history, &finals.iter().cloned().collect())
    }

    /// The kinds reported, sorted.
    fn kinds(history: &[TxnObs], finals: &[(u64, Vec<u64>)]) -> Vec<String> {
        let mut kinds: Vec<String> = run(history, finals).into_iter().map(|a| a.kind).collect();
        kinds.sort();
        kinds
    }

    fn cycle(kind: &str, txns: Vec<u64>, detail: &str) -> Anomaly {
        anomaly(kind, txns, detail.to_string())
    }

    #[test]
    fn serial_history_is_clean() {
        // One at a time, each seeing all before it: ww, wr and rt edges all point forward,
        // rw edges would point at the reader itself, every read is a prefix of the final list.
        let history = [
            txn(1, Committed, (0, 10), vec![read(1, &[]), append(1, 1)]),
            txn(
                2,
                Committed,
                (20, 30),
                vec![read(1, &[1]), append(1, 2), append(2, 3)],
            ),
            txn(
                3,
                Committed,
                (40, 50),
                vec![read(1, &[1, 2]), read(2, &[3])],
            ),
        ];
        assert!(run(&history, &[(1, vec![1, 2]), (2, vec![3])]).is_empty());
    }

    #[test]
    fn opposite_append_orders_are_g0() {
        // Concurrent T1 and T2 append to keys 1 and 2; the final lists put T1 first on key 1
        // and T2 first on key 2: T1 -ww(k1)-> T2 -ww(k2)-> T1, writes only.
        let history = [
            txn(1, Committed, (0, 10), vec![append(1, 1), append(2, 2)]),
            txn(2, Committed, (0, 10), vec![append(1, 3), append(2, 4)]),
        ];
        let expected = cycle("G0", vec![1, 2], "T1 -ww(k1)-> T2 -ww(k2)-> T1");
        assert_eq!(
            run(&history, &[(1, vec![1, 3]), (2, vec![4, 2])]),
            [expected]
        );
    }

    #[test]
    fn visible_aborted_append_is_g1a() {
        // T2 reads 1, which only aborted T1 appended. The empty final list is a prefix of the
        // read, and an aborted writer is no graph node: nothing else to report.
        let history = [
            txn(1, Aborted, (0, 10), vec![append(1, 1)]),
            txn(2, Committed, (20, 30), vec![read(1, &[1])]),
        ];
        assert_eq!(kinds(&history, &[(1, vec![])]), ["G1a"]);
    }

    #[test]
    fn mutual_reads_are_g1c() {
        // Each reads the other's append: T1 -wr(k1)-> T2 -wr(k2)-> T1. Both reads are whole
        // lists, so no rw edge.
        let history = [
            txn(1, Committed, (0, 10), vec![append(1, 1), read(2, &[2])]),
            txn(2, Committed, (0, 10), vec![append(2, 2), read(1, &[1])]),
        ];
        assert_eq!(kinds(&history, &[(1, vec![1]), (2, vec![2])]), ["G1c"]);
    }

    #[test]
    fn read_skew_is_g_single() {
        // T1 sees T2's append to key 2 (T2 -wr(k2)-> T1) but reads key 1 empty, missing T2's
        // append there (T1 -rw(k1)-> T2): a cycle with exactly one anti-dependency.
        let history = [
            txn(1, Committed, (0, 10), vec![read(1, &[]), read(2, &[2])]),
            txn(2, Committed, (0, 10), vec![append(1, 1), append(2, 2)]),
        ];
        let expected = cycle("G-single", vec![1, 2], "T1 -rw(k1)-> T2 -wr(k2)-> T1");
        assert_eq!(run(&history, &[(1, vec![1]), (2, vec![2])]), [expected]);
    }

    #[test]
    fn write_skew_is_g2() {
        // Both read keys 1 and 2 empty; T1 appends to 1, T2 to 2. Each missed the other's
        // append: T1 -rw(k2)-> T2 -rw(k1)-> T1. (A miss of one's own append is no edge.)
        let history = [
            txn(
                1,
                Committed,
                (0, 10),
                vec![read(1, &[]), read(2, &[]), append(1, 1)],
            ),
            txn(
                2,
                Committed,
                (0, 10),
                vec![read(1, &[]), read(2, &[]), append(2, 2)],
            ),
        ];
        assert_eq!(kinds(&history, &[(1, vec![1]), (2, vec![2])]), ["G2"]);
    }

    #[test]
    fn stale_read_after_commit_is_g_single_realtime() {
        // T1 ended (10) before T2 began (20): T1 -rt-> T2. T2 read key 1 empty, yet the final
        // list holds T1's 1: T2 -rw(k1)-> T1. Serializable (T2, T1), but not strictly.
        let history = [
            txn(1, Committed, (0, 10), vec![append(1, 1)]),
            txn(2, Committed, (20, 30), vec![read(1, &[])]),
        ];
        let expected = cycle("G-single-realtime", vec![1, 2], "T1 -rt-> T2 -rw(k1)-> T1");
        assert_eq!(run(&history, &[(1, vec![1])]), [expected]);
    }

    #[test]
    fn diverging_read_is_incompatible_order() {
        // T3 saw [2], not a prefix of the final [1, 2]. Its rw edge is skipped and
        // T1 -ww-> T2 -wr-> T3 has no cycle.
        let history = [
            txn(1, Committed, (0, 10), vec![append(1, 1)]),
            txn(2, Committed, (0, 10), vec![append(1, 2)]),
            txn(3, Committed, (0, 10), vec![read(1, &[2])]),
        ];
        assert_eq!(kinds(&history, &[(1, vec![1, 2])]), ["incompatible-order"]);
    }

    #[test]
    fn missing_committed_append_is_lost() {
        // Committed T2's 2 is missing from the final list. Unknown T3's 3 is never seen, so T3
        // is ignored, not lost.
        let history = [
            txn(1, Committed, (0, 10), vec![append(1, 1)]),
            txn(2, Committed, (20, 30), vec![append(1, 2)]),
            TxnObs {
                end: None,
                ..txn(3, Unknown, (40, 40), vec![append(1, 3)])
            },
        ];
        assert_eq!(kinds(&history, &[(1, vec![1])]), ["lost-append"]);
    }

    #[test]
    fn visible_unknown_txn_must_be_whole() {
        // Unknown T1's 1 is visible, so T1 took effect, and its 2, missing on key 2, is lost.
        let ops = vec![append(1, 1), append(2, 2)];
        let history = [TxnObs {
            end: None,
            ..txn(1, Unknown, (0, 0), ops)
        }];
        assert_eq!(
            kinds(&history, &[(1, vec![1]), (2, vec![])]),
            ["lost-append"]
        );
    }

    #[test]
    fn read_of_intermediate_append_is_g1b() {
        // T1 appends 1 then 2; T2's read ends at 1, T1's intermediate state (G1b). The same
        // read closes T1 -wr(k1)-> T2 -rw(k1)-> T1 (G-single).
        let history = [
            txn(1, Committed, (0, 10), vec![append(1, 1), append(1, 2)]),
            txn(2, Committed, (0, 10), vec![read(1, &[1])]),
        ];
        assert_eq!(kinds(&history, &[(1, vec![1, 2])]), ["G-single", "G1b"]);
    }

    #[test]
    fn read_missing_own_append_is_internal() {
        // T1 appends 1, then reads key 1 without it. The empty read is a prefix of [1] and its
        // rw edge would point at T1 itself, so nothing else is reported.
        let history = [txn(1, Committed, (0, 10), vec![append(1, 1), read(1, &[])])];
        assert_eq!(kinds(&history, &[(1, vec![1])]), ["internal"]);
    }

    #[test]
    fn repeated_element_is_duplicate() {
        // The final list holds T1's only element twice; the ww pair (1, 1) is a self-edge.
        let history = [txn(1, Committed, (0, 10), vec![append(1, 1)])];
        assert_eq!(kinds(&history, &[(1, vec![1, 1])]), ["duplicate-element"]);
    }
}
