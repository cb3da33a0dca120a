//! Elle-style strict-serializability checker for list-append histories (Kingsbury & Alvaro,
//! "Elle", VLDB 2020).
//!
//! Transactions append elements, unique across the history, to integer keys, and read whole
//! lists. Since elements are unique and lists only grow, each read names exactly which appends
//! it saw and in which order, so the dependency graph follows from the client's observations.
//!
//! Checks over every observation (committed reads, and the final read of each key):
//! `duplicate-element` (an element twice in one list); `G1a` (an aborted append is visible);
//! `incompatible-order` (a list is not a prefix of its key's version order); `lost-append` (an
//! append of a transaction that took effect is missing from the final list); `G1b` (a read ends
//! in an element its writer followed with another append to that key); `internal` (a visible
//! element nobody appended to that key, a committed transaction's read contradicting its own
//! earlier reads and appends, a reused element, or an end before the begin). Then one report
//! per strongly connected component of the dependency graph, named by one cycle's edges: `G0`
//! (ww only), `G1c` (ww/wr), `G-single` (one rw), `G2` (more rw), `-realtime` if it needs rt.
//!
//! Inference:
//! - A transaction *took effect* if it committed, or its outcome is unknown and one of its
//!   appends is visible; only those are graph nodes. Only committed reads are observations.
//! - A key's version order is its longest observation, the final list winning ties. ww joins
//!   the writers of consecutive elements; wr runs from the writer of a read's last element to
//!   the reader (earlier elements are ordered by ww); rw runs from a reader to the writer of
//!   the first element it missed, inferred only from reads that are prefixes of the order.
//! - rt: T -> U when T committed and T.end < U.begin. An unknown outcome never sources rt (it
//!   may take effect after the client gave up). rt edges are implicit: T's successors are a
//!   suffix of the nodes sorted by begin, found by binary search; memory stays linear, time is
//!   O(n^2) at worst.
//! - Components are found by an iterative Tarjan twice: without rt (plain serializability
//!   violations), then with rt, reporting only components disjoint from the first pass's, so
//!   `-realtime` means "serializable but not strictly". The cycle shown is a shortest one
//!   through the component's first transaction (BFS; per pair ww beats wr beats rw beats rt):
//!   one witness, not necessarily the weakest anomaly in the component.
//!
//! Limits: no order is inferred beyond the longest observation (no cross-key inference), so
//! the checker aims to be sound rather than complete. Transactions are identified by history
//! position; ids only label reports. Output is deterministic (history or sorted order).

use std::collections::btree_map::Entry;
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

/// Checks `history` against the rules in the module doc. `final_lists`: the final value of
/// every key as read after the run (authoritative order); a key it lacks counts as empty.
pub fn check(history: &[TxnObs], final_lists: &BTreeMap<u64, Vec<u64>>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let facts = Facts::gather(history, final_lists, &mut out);
    for (txn, record) in history.iter().enumerate() {
        if record.end.is_some_and(|end| end < record.begin) {
            out.push(anomaly("internal", vec![record.id], format!("T{} ends before it begins", record.id)));
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
    Anomaly { kind: kind.to_string(), txns, detail }
}

/// Who saw an element or a list: reader ids, `None` for the final read.
type Observers = BTreeSet<Option<u64>>;

/// Where an element was appended: its key, transaction (history position) and op index.
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
    /// Element → its (first) append.
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
        let mut appends = BTreeMap::new();
        let mut last_append = BTreeMap::new();
        let mut keys: BTreeSet<u64> = final_lists.keys().copied().collect();
        let mut reads = Vec::new();
        for (txn, record) in history.iter().enumerate() {
            for (op, step) in record.ops.iter().enumerate() {
                match step {
                    Op::Append { key, value } => {
                        keys.insert(*key);
                        last_append.insert((txn, *key), *value);
                        match appends.entry(*value) {
                            Entry::Vacant(slot) => {
                                slot.insert(Append { key: *key, txn, op });
                            }
                            Entry::Occupied(first) => {
                                let first = history[first.get().txn].id;
                                let detail = format!("element {value} appended by T{first} and T{}", record.id);
                                out.push(anomaly("internal", vec![first, record.id], detail));
                            }
                        }
                    }
                    Op::Read { key, list } if record.status == Status::Committed => {
                        keys.insert(*key);
                        reads.push(Observation { key: *key, list: list.as_slice(), reader: Some(txn) });
                    }
                    Op::Read { .. } => {}
                }
            }
        }
        let mut observations: Vec<Observation<'a>> = keys
            .iter()
            .map(|&key| Observation {
                key,
                list: final_lists.get(&key).map_or(&[][..], Vec::as_slice),
                reader: None,
            })
            .collect();
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
                seen_by.entry((obs.key, element)).or_default().insert(reader);
            }
        }

        let mut took_effect: Vec<bool> =
            history.iter().map(|record| record.status == Status::Committed).collect();
        for (&element, append) in &appends {
            let unknown = history[append.txn].status == Status::Unknown;
            if unknown && seen_by.contains_key(&(append.key, element)) {
                took_effect[append.txn] = true;
            }
        }
        Facts { history, appends, last_append, observations, orders, seen_by, took_effect }
    }

    fn id(&self, txn: usize) -> u64 {
        self.history[txn].id
    }

    fn reader_id(&self, obs: &Observation<'_>) -> Option<u64> {
        obs.reader.map(|txn| self.id(txn))
    }

    /// The append of `element` to `key`, if some transaction made one.
    fn writer(&self, key: u64, element: u64) -> Option<Append> {
        self.appends.get(&element).copied().filter(|append| append.key == key)
    }

    /// The graph node that appended `element` to `key`, if it took effect.
    fn node(&self, key: u64, element: u64) -> Option<usize> {
        self.writer(key, element).map(|append| append.txn).filter(|&txn| self.took_effect[txn])
    }

    fn order(&self, key: u64) -> &'a [u64] {
        self.orders.get(&key).copied().unwrap_or(&[])
    }
}

/// A committed transaction's read of a key must agree with what the transaction already
/// knows of it: exactly its previous read plus its appends since, or, with no previous read,
/// a list ending with its appends so far. It must not contain the transaction's later appends.
fn check_own_reads(facts: &Facts<'_>, txn: usize, out: &mut Vec<Anomaly>) {
    let record = &facts.history[txn];
    // Key → (is the whole list known?, the whole list or its known tail).
    let mut known: BTreeMap<u64, (bool, Vec<u64>)> = BTreeMap::new();
    for (op, step) in record.ops.iter().enumerate() {
        match step {
            Op::Append { key, value } => known.entry(*key).or_default().1.push(*value),
            Op::Read { key, list } => {
                let (whole, expected) =
                    known.get(key).map_or((false, &[][..]), |(whole, tail)| (*whole, tail.as_slice()));
                let from_the_future = |element: &&u64| {
                    facts.writer(*key, **element).is_some_and(|a| a.txn == txn && a.op > op)
                };
                let problem = if whole && list.as_slice() != expected {
                    let at = common_prefix(list, expected);
                    Some(format!("expected exactly {}", excerpt(expected, at)))
                } else if !whole && !list.ends_with(expected) {
                    let at = expected.len().saturating_sub(1);
                    Some(format!("expected it to end with its own appends {}", excerpt(expected, at)))
                } else {
                    list.iter()
                        .find(from_the_future)
                        .map(|element| format!("it holds {element}, which the transaction appends later"))
                };
                if let Some(problem) = problem {
                    let seen = excerpt(list, list.len().saturating_sub(1));
                    let detail = format!("T{} read key {key} as {seen}, but {problem}", record.id);
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
                let detail = format!(
                    "key {key}: element {element}, never appended to it, was seen by {}",
                    observers(seen)
                );
                out.push(anomaly("internal", reader_ids(seen), detail));
            }
            Some(append) if facts.history[append.txn].status == Status::Aborted => {
                let writer = facts.id(append.txn);
                let mut txns = vec![writer];
                txns.extend(reader_ids(seen));
                let detail = format!(
                    "key {key}: element {element}, appended by aborted T{writer}, was seen by {}",
                    observers(seen)
                );
                out.push(anomaly("G1a", txns, detail));
            }
            Some(_) => {}
        }
    }
    let mut repeated: BTreeMap<(u64, u64), Observers> = BTreeMap::new();
    for obs in &facts.observations {
        let mut once = BTreeSet::new();
        for &element in obs.list {
            if !once.insert(element) {
                repeated.entry((obs.key, element)).or_default().insert(facts.reader_id(obs));
            }
        }
    }
    for ((key, element), seen) in repeated {
        let detail = format!("key {key}: element {element} occurs twice in lists seen by {}", observers(&seen));
        out.push(anomaly("duplicate-element", reader_ids(&seen), detail));
    }
}

/// Every observed list of a key must be a prefix of the key's version order.
fn check_orders(facts: &Facts<'_>, out: &mut Vec<Anomaly>) {
    let mut conflicts: BTreeMap<(u64, &[u64]), Observers> = BTreeMap::new();
    for obs in &facts.observations {
        if !facts.order(obs.key).starts_with(obs.list) {
            conflicts.entry((obs.key, obs.list)).or_default().insert(facts.reader_id(obs));
        }
    }
    for ((key, list), seen) in conflicts {
        let order = facts.order(key);
        let at = common_prefix(list, order);
        let detail = format!(
            "key {key}: {} observed {}, but the longest observation is {}; they differ at index {at}",
            observers(&seen),
            excerpt(list, at),
            excerpt(order, at)
        );
        out.push(anomaly("incompatible-order", reader_ids(&seen), detail));
    }
}

/// Every append of a transaction that took effect must be in the final list of its key.
fn check_lost_appends(facts: &Facts<'_>, out: &mut Vec<Anomaly>) {
    let mut lost: BTreeMap<u64, (Vec<u64>, BTreeSet<u64>)> = BTreeMap::new();
    for (&element, append) in &facts.appends {
        let in_final = facts
            .seen_by
            .get(&(append.key, element))
            .is_some_and(|seen| seen.contains(&None));
        if facts.took_effect[append.txn] && !in_final {
            let (elements, txns) = lost.entry(append.key).or_default();
            elements.push(element);
            txns.insert(facts.id(append.txn));
        }
    }
    for (key, (elements, txns)) in lost {
        let detail = format!(
            "key {key}: {} append(s) of transactions that took effect are missing from the final list: {}",
            elements.len(),
            excerpt(&elements, 0)
        );
        out.push(anomaly("lost-append", txns.into_iter().collect(), detail));
    }
}

/// A committed read must not end in an element its writer later followed with another
/// append to the same key (reading one's own intermediate state is `check_own_reads`' job).
fn check_intermediate_reads(facts: &Facts<'_>, out: &mut Vec<Anomaly>) {
    for obs in &facts.observations {
        let (Some(reader), Some(&last)) = (obs.reader, obs.list.last()) else { continue };
        let Some(writer) = facts.writer(obs.key, last) else { continue };
        let latest = facts.last_append.get(&(writer.txn, obs.key)).copied().unwrap_or(last);
        if writer.txn != reader && latest != last {
            let (key, w, r) = (obs.key, facts.id(writer.txn), facts.id(reader));
            let detail = format!(
                "T{r} read key {key} ending in {last}, an intermediate append of T{w}, whose last \
                 append to key {key} is {latest}"
            );
            out.push(anomaly("G1b", vec![w, r], detail));
        }
    }
}

/// A labelled dependency edge; the key names where the dependency was observed. The variant
/// order is the preference when a pair has several labels: the weakest anomaly reads clearest.
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

/// The dependency graph over history positions. Only transactions that took effect have
/// edges; rt edges are implicit (see `successors`).
struct Graph {
    /// Node → successor → the best-ranked ww/wr/rw label seen for the pair.
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
        let mut by_begin: Vec<usize> = (0..history.len()).filter(|&txn| facts.took_effect[txn]).collect();
        by_begin.sort_by_key(|&txn| (history[txn].begin, txn));
        let mut graph = Graph {
            explicit: vec![BTreeMap::new(); history.len()],
            begins: by_begin.iter().map(|&txn| history[txn].begin).collect(),
            by_begin,
            rt_end: history
                .iter()
                .map(|record| match (record.status, record.end) {
                    (Status::Committed, Some(end)) if end >= record.begin => Some(end),
                    _ => None,
                })
                .collect(),
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
            if order.starts_with(obs.list) {
                let missed = order.get(obs.list.len());
                if let Some(writer) = missed.and_then(|&next| facts.node(obs.key, next)) {
                    graph.add(reader, writer, Edge::Rw(obs.key));
                }
            }
        }
        graph
    }

    fn add(&mut self, from: usize, to: usize, edge: Edge) {
        if from == to {
            return;
        }
        if let Some(successors) = self.explicit.get_mut(from) {
            let label = successors.entry(to).or_insert(edge);
            if edge < *label {
                *label = edge;
            }
        }
    }

    /// `v`'s successors: explicit edges first, then (if `realtime`) every node that began
    /// after `v` ended.
    fn successors(&self, v: usize, realtime: bool) -> impl Iterator<Item = (usize, Edge)> + '_ {
        let later: &[usize] = match self.rt_end.get(v).copied().flatten() {
            Some(end) if realtime => {
                let first = self.begins.partition_point(|&begin| begin <= end);
                self.by_begin.get(first..).unwrap_or(&[])
            }
            _ => &[],
        };
        let explicit = self.explicit.get(v).into_iter().flatten().map(|(&w, &edge)| (w, edge));
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
                    Some((w, _)) => {
                        if on_stack[w] {
                            low[v] = low[v].min(index[w]);
                        }
                    }
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

    /// A shortest cycle through the component's first member, staying inside the component,
    /// as (node, edge to the next node) steps; the last step leads back to the first node.
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
                        let &(previous, edge) = parent.get(&at)?;
                        steps.push((previous, edge));
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

/// Reports one cycle per component: first those without rt edges, then real-time ones among
/// transactions not already in a plain cycle.
fn report_cycles(facts: &Facts<'_>, graph: &Graph, out: &mut Vec<Anomaly>) {
    let mut explained = BTreeSet::new();
    for component in graph.components(false) {
        report_cycle(facts, graph, &component, false, out);
        explained.extend(component);
    }
    for component in graph.components(true) {
        if !component.iter().any(|v| explained.contains(v)) {
            report_cycle(facts, graph, &component, true, out);
        }
    }
}

fn report_cycle(facts: &Facts<'_>, graph: &Graph, component: &[usize], realtime: bool, out: &mut Vec<Anomaly>) {
    let Some(steps) = graph.cycle_through(component, realtime) else {
        let txns = component.iter().map(|&v| facts.id(v)).collect();
        out.push(anomaly("internal", txns, "checker: a strongly connected component without a cycle".into()));
        return;
    };
    let txns: Vec<u64> = steps.iter().map(|&(v, _)| facts.id(v)).collect();
    let mut detail = String::new();
    for (&(_, edge), id) in steps.iter().zip(&txns) {
        let _ = write!(detail, "T{id} -{edge}-> ");
    }
    if let Some(first) = txns.first() {
        let _ = write!(detail, "T{first}");
    }
    out.push(anomaly(&classify(&steps), txns, detail));
}

/// Names a cycle by its edges: G0 (ww only), G1c (ww/wr), G-single (one rw), G2 (several rw);
/// `-realtime` if it needs an rt edge.
fn classify(steps: &[(usize, Edge)]) -> String {
    let rw = steps.iter().filter(|(_, edge)| matches!(edge, Edge::Rw(_))).count();
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
    let names: Vec<String> = seen
        .iter()
        .map(|reader| reader.map_or_else(|| "the final read".to_string(), |id| format!("T{id}")))
        .collect();
    names.join(", ")
}

fn common_prefix(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// `list` shown around index `at`, elided elsewhere: `[..., 4, 7, 9, ...] (len 40)`.
fn excerpt(list: &[u64], at: usize) -> String {
    let from = at.saturating_sub(3).min(list.len());
    let to = at.saturating_add(5).min(list.len());
    let shown: Vec<String> = list[from..to].iter().map(u64::to_string).collect();
    if from == 0 && to == list.len() {
        return format!("[{}]", shown.join(", "));
    }
    let head = if from > 0 { "..., " } else { "" };
    let tail = if to < list.len() { ", ..." } else { "" };
    format!("[{head}{}{tail}] (len {})", shown.join(", "), list.len())
}
