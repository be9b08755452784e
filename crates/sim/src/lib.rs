//! A deterministic simulator of a whole corral ensemble: N [`Replica`]s with their
//! [`Election`]s and simulated disks, M clients, and a network that loses, delays,
//! duplicates, reorders, cuts and partitions — all in one thread, driven by one seed.
//!
//! **Owns** the simulated world: an event queue ordered by (time, sequence), the disks
//! (log with a durable prefix, epoch files, snapshots in the real SNAP stream format), the
//! quorum connections (ordered, reliable streams that can be cut), the election channel
//! (datagrams that may be lost, duplicated and reordered), client connections, and the
//! ground truth the checkers compare against: every txn any leader created, by zxid, and
//! which of them were committed.
//!
//! **The shell's contract** is carried out exactly as [`ReplicaOutput`] documents it:
//! `ReadTxnLog` answers from the durable part of the leader's simulated log after a random
//! delay (during which the leader commits on, so its committed log can outrun the read),
//! sometimes with an injected read failure; `Client(Append)` logs and holds later client
//! output until `Release`; a simulated fsync
//! completes after a random delay and reports [`Replica::durable`]; `Truncate` cuts the log
//! and, if asked, reloads the tree from snapshot + log; `InstallSnapshot` writes the tree
//! as a snapshot and drops the log; `Elect` runs the member's [`Election`] with
//! [`Replica::vote`]. Stopping to listen for learners closes every learner connection (the
//! leader's process closes its sockets, as Java's `Leader.shutdown` does).
//!
//! **Checks after every event**: `check_invariants` of every live replica; one established
//! leader per epoch; a txn's bytes are the same wherever it is logged; logs strictly
//! increase; epochs never go back; whenever a replica's tree is at a committed zxid, its
//! digest is the one that txn recorded; a new leader's log holds every committed txn;
//! a client's reply comes in request order, its zxid never goes back, every acknowledged
//! write is committed with the client's value, every read returns a committed value no
//! older than what the client saw (and, after `sync`, no older than what was committed
//! before the sync). **At the end**, after healing: every member converges to one tree
//! digest that holds the last committed value of every key, and acknowledged writes are
//! linearizable (their zxid order respects real time).
//!
//! A failure panics with the seed, the parameters and the last events.

pub mod client;
pub mod net;

use bytes::Bytes;
use client::{Client, HKind, HOp, Outcome, KEYS, PIPELINE_MAX, SESSION_TIMEOUT_MS};
use corral_node::node::{ConnId, NodeConfig, Now, Output};
use corral_node::replica::{Replica, ReplicaConfig, ReplicaOutput, Role, TxnLogReadId};
use corral_node::Node;
use corral_proto::quorum::{counter_of, epoch_of, Notification, PacketType, QuorumPacket, Sid};
use corral_proto::request::{CreateRequest, PathWatch, SetDataRequest};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, ErrorCode, OpCode, Reader, Record, ReplyHeader, Request,
    Response, Txn, TxnEntry, Writer,
};
use corral_storage::snapstream::{read_snap_stream, write_snap_stream};
use corral_tree::snapshot::TreeBuilder;
use corral_tree::{Caller, DataTree, TreeConfig};
use corral_zab::election::{Action as EAction, Election, ElectionConfig};
use corral_zab::leader::{SyncKind, TxnLogRead};
use corral_zab::sim::Rng;
use net::{CConn, CMsg, QConn, QMsg, SMsg};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

/// The simulated clock ticks every this many ms (replicas, elections, clients).
pub const TICK_MS: u64 = 10;
/// ZooKeeper's `tickTime` of the simulated ensemble.
pub const ZK_TICK_MS: i64 = 100;
/// Events one run may take before it is declared a livelock.
const EVENTS_MAX: u64 = 3_000_000;
/// Events kept for a failure report.
const TRACE_EVENTS_MAX: usize = 300;
/// Wall clock at simulated time 0.
const WALL_EPOCH_MS: i64 = 1_700_000_000_000;
/// How often a learner retries a refused connection to its leader (Java: 5 tries).
const CONNECT_TRIES_MAX: u32 = 5;

/// What a run looks like; drawn from the seed by [`Params::from_seed`].
#[derive(Debug, Clone)]
pub struct Params {
    pub voters: usize,
    pub observers: usize,
    pub clients: usize,
    /// Faults happen during this much simulated time; then everything heals.
    pub chaos_ms: u64,
    /// Time allowed after healing to converge.
    pub settle_ms: u64,
    pub delay_max_ms: u64,
    pub election_drop_per_mille: u32,
    pub election_dup_per_mille: u32,
    pub fsync_max_ms: u64,
    /// Mean time between faults (0: none).
    pub fault_every_ms: u64,
    pub crash_weight: u32,
    pub partition_weight: u32,
    pub cut_weight: u32,
    pub pause_weight: u32,
    /// Chance that a completed fsync is followed by a snapshot of the tree.
    pub snapshot_per_mille: u32,
    pub op_every_ms: u64,
    /// `commitLogCount` of every member: small ones send lagging learners to the txn log.
    pub commit_log_count: usize,
    /// Whether leaders sync learners from their txn log (else SNAP).
    pub txn_log_sync: bool,
}

impl Params {
    pub fn from_seed(seed: u64) -> Params {
        let mut r = Rng::new(seed ^ 0x5eed_0fc0_ffee);
        let voters = if r.chance(600) { 3 } else { 5 };
        Params {
            voters,
            observers: if r.chance(300) { 1 } else { 0 },
            clients: 2 + r.below(6) as usize,
            chaos_ms: 6_000 + r.below(6_000),
            settle_ms: 30_000,
            delay_max_ms: 1 + r.below(20),
            election_drop_per_mille: [0, 20, 100, 300][r.below(4) as usize],
            election_dup_per_mille: [0, 20, 100][r.below(3) as usize],
            fsync_max_ms: [2, 10, 30, 120][r.below(4) as usize],
            fault_every_ms: [0, 300, 800, 2_000][r.below(4) as usize],
            crash_weight: r.below(4) as u32,
            partition_weight: r.below(4) as u32,
            cut_weight: r.below(4) as u32,
            pause_weight: r.below(3) as u32,
            snapshot_per_mille: [0, 20, 100][r.below(3) as usize],
            op_every_ms: 1 + r.below(40),
            // Drawn last so the parameters above stay what they were for each seed.
            commit_log_count: [500, 100, 20, 5][r.below(4) as usize],
            txn_log_sync: r.chance(850),
        }
    }
}

/// Counts of what a run did, to see that the faults and paths were exercised.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub elections_decided: u64,
    pub established: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub cuts: u64,
    pub pauses: u64,
    pub snaps_sent: u64,
    pub truncates: u64,
    pub reloads: u64,
    pub ops_ok: u64,
    pub ops_unknown: u64,
    pub writes_committed: u64,
    pub end_ms: u64,
    /// Txn log reads asked for by leaders, and what the learners then got.
    pub txn_log_reads: u64,
    pub txn_log_diffs: u64,
    pub txn_log_snaps: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.events += o.events;
        self.elections_decided += o.elections_decided;
        self.established += o.established;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.cuts += o.cuts;
        self.pauses += o.pauses;
        self.snaps_sent += o.snaps_sent;
        self.truncates += o.truncates;
        self.reloads += o.reloads;
        self.ops_ok += o.ops_ok;
        self.ops_unknown += o.ops_unknown;
        self.writes_committed += o.writes_committed;
        self.end_ms += o.end_ms;
        self.txn_log_reads += o.txn_log_reads;
        self.txn_log_diffs += o.txn_log_diffs;
        self.txn_log_snaps += o.txn_log_snaps;
    }
}

#[derive(Debug)]
enum Ev {
    Tick,
    Fault,
    Heal,
    Restart(Sid),
    HealPartition(u64),
    Elect {
        from: Sid,
        to: Sid,
        to_inc: u64,
        /// Per (from, to) sequence: a newer message supersedes one still in flight.
        nth: u64,
        n: Notification,
    },
    /// Connection attempt of a learner reaches the leader's port.
    QConnect(u64),
    /// Front of a quorum connection's direction arrives.
    QDeliver {
        conn: u64,
        to_leader: bool,
    },
    CDeliver {
        conn: u64,
        to_server: bool,
    },
    Fsync {
        sid: Sid,
        inc: u64,
        gen: u64,
        len: usize,
    },
    /// A txn log read finishes on member `sid` (in its incarnation `inc`).
    TxnLogRead {
        sid: Sid,
        inc: u64,
        id: TxnLogReadId,
        result: Result<TxnLogRead, String>,
    },
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A member's disk: survives crashes, except the log past its durable prefix.
#[derive(Debug, Default)]
struct Disk {
    log: Vec<TxnEntry>,
    durable_len: usize,
    accepted_epoch: i64,
    current_epoch: i64,
    /// (zxid, SNAP-stream bytes, zxids of the history it covers), oldest first.
    snaps: Vec<(i64, Vec<u8>, Vec<i64>)>,
    /// Bumped by truncation and snapshot installs: in-flight fsyncs are void.
    gen: u64,
}

struct Live {
    replica: Replica,
    election: Election,
    election_started: bool,
    /// Client output held behind an Append: (zxid it waits for, output).
    held: VecDeque<(i64, Output)>,
    gate: i64,
    released: i64,
    listening: bool,
    fsync_in_flight: bool,
    leader_conn: Option<u64>,
    peers: BTreeSet<u64>,
}

struct Server {
    sid: Sid,
    /// The history a snapshot being received covers (the leader's, up to its zxid).
    incoming_cover: Vec<i64>,
    disk: Disk,
    inc: u64,
    live: Option<Live>,
}

/// A txn of the ground truth.
#[derive(Debug, Clone)]
struct Truth {
    bytes: Bytes,
    digest: Option<i64>,
    /// Set when committed: the time we learnt it.
    committed_ms: Option<u64>,
    /// (key, value) of a create or setData of a client key.
    write: Option<(String, Option<String>)>,
}

pub struct Sim {
    pub seed: u64,
    pub p: Params,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    servers: BTreeMap<Sid, Server>,
    voters: BTreeSet<Sid>,
    observers: BTreeSet<Sid>,
    qconns: BTreeMap<u64, QConn>,
    cconns: BTreeMap<u64, CConn>,
    next_id: u64,
    /// Blocked server pairs (both orders), by partition id.
    partitions: BTreeMap<u64, BTreeSet<(Sid, Sid)>>,
    clients: Vec<Client>,
    pub history: Vec<HOp>,
    truth: BTreeMap<i64, Truth>,
    leaders: BTreeMap<i64, Sid>,
    trace: VecDeque<String>,
    healing: bool,
    pub stats: Stats,
    config_text: Bytes,
    /// Trace every quorum packet (`CORRAL_SIM_VERBOSE`).
    verbose: bool,
    /// Keep the whole trace and print it at the end (`CORRAL_SIM_DUMP`).
    dump: bool,
    /// Members a call reached since the last check (only they can have changed).
    touched: BTreeSet<Sid>,
    /// Members paused (a long GC, a stopped VM) until a time: they process nothing.
    paused: BTreeMap<Sid, u64>,
    /// Election messages sent per (from, to): QuorumCnxManager's send queue holds one
    /// message per peer, so a newer one replaces an older one not yet delivered.
    election_sent: BTreeMap<(Sid, Sid), u64>,
}

fn now_of(ms: u64) -> Now {
    Now {
        mono_ms: ms as i64,
        wall_ms: WALL_EPOCH_MS + ms as i64,
    }
}

fn tree_cfg() -> TreeConfig {
    TreeConfig::default()
}

fn zx(z: i64) -> String {
    format!("{:#x}", z)
}

/// (key, value) of a client write in a txn.
fn write_of(txn: &Txn) -> Option<(String, Option<String>)> {
    let val = |d: &Option<Bytes>| d.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match txn {
        Txn::Create(c) | Txn::Create2(c) if KEYS.contains(&c.path.as_str()) => {
            Some((c.path.clone(), val(&c.data)))
        }
        Txn::SetData { path, data, .. } if KEYS.contains(&path.as_str()) => {
            Some((path.clone(), val(data)))
        }
        _ => None,
    }
}

impl Sim {
    pub fn new(seed: u64, p: Params) -> Sim {
        let voters: BTreeSet<Sid> = (1..=p.voters as Sid).collect();
        let observers: BTreeSet<Sid> =
            (p.voters as Sid + 1..=(p.voters + p.observers) as Sid).collect();
        let mut text = String::new();
        for s in voters.iter() {
            text += &format!("server.{s}=127.0.0.{s}:2888:3888:participant\n");
        }
        for s in observers.iter() {
            text += &format!("server.{s}=127.0.0.{s}:2888:3888:observer\n");
        }
        text += "version=0";
        let mut servers = BTreeMap::new();
        for &sid in voters.iter().chain(observers.iter()) {
            servers.insert(
                sid,
                Server {
                    sid,
                    incoming_cover: Vec::new(),
                    disk: Disk::default(),
                    inc: 0,
                    live: None,
                },
            );
        }
        let clients = (0..p.clients).map(Client::new).collect();
        Sim {
            seed,
            rng: Rng::new(seed),
            p,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            servers,
            voters,
            observers,
            qconns: BTreeMap::new(),
            cconns: BTreeMap::new(),
            next_id: 1,
            partitions: BTreeMap::new(),
            clients,
            history: Vec::new(),
            truth: BTreeMap::new(),
            leaders: BTreeMap::new(),
            trace: VecDeque::new(),
            healing: false,
            stats: Stats::default(),
            config_text: Bytes::from(text),
            verbose: std::env::var_os("CORRAL_SIM_VERBOSE").is_some(),
            touched: BTreeSet::new(),
            paused: BTreeMap::new(),
            election_sent: BTreeMap::new(),
            dump: std::env::var_os("CORRAL_SIM_DUMP").is_some(),
        }
    }

    // ---- plumbing ------------------------------------------------------------------

    fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn after(&mut self, delay: u64, ev: Ev) {
        self.at(self.now + delay, ev);
    }

    fn delay(&mut self) -> u64 {
        1 + self.rng.below(self.p.delay_max_ms)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn log(&mut self, s: impl Into<String>) {
        if self.trace.len() == TRACE_EVENTS_MAX && !self.dump {
            self.trace.pop_front();
        }
        let s = format!("t{} {}", self.now, s.into());
        self.trace.push_back(s);
    }

    /// The failure report: seed, parameters, members, last events.
    pub fn report(&self, what: &str) -> String {
        let mut s = format!(
            "seed {} failed at t{}: {what}\n  replay: CORRAL_SIM_SEED={} cargo test --release -p corral-sim --test seeds -- --nocapture\n  params: {:?}\n",
            self.seed, self.now, self.seed, self.p
        );
        for (sid, srv) in &self.servers {
            match &srv.live {
                None => s += &format!("  {sid}: down, disk log {} entries\n", srv.disk.log.len()),
                Some(l) => {
                    let r = &l.replica;
                    s += &format!(
                        "  {sid}: {:?} leader {:?} serving {} epochs {}/{} last_logged {} tree {} digest {}\n",
                        r.role(),
                        r.leader_sid(),
                        r.is_serving(),
                        r.accepted_epoch(),
                        r.current_epoch(),
                        zx(r.last_logged()),
                        zx(r.node().last_zxid()),
                        r.tree().digest()
                    )
                }
            }
        }
        s += "  last events:\n";
        for e in &self.trace {
            s += &format!("    {e}\n");
        }
        s
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{}", self.report(what))
    }

    fn blocked(&self, a: Sid, b: Sid) -> bool {
        self.partitions.values().any(|p| p.contains(&(a, b)))
    }

    fn is_up(&self, sid: Sid) -> bool {
        self.servers.get(&sid).is_some_and(|s| s.live.is_some())
    }

    fn live(&mut self, sid: Sid) -> Option<&mut Live> {
        self.servers.get_mut(&sid).and_then(|s| s.live.as_mut())
    }

    // ---- the run -------------------------------------------------------------------

    /// Runs the whole scenario and its checks; panics with a report on any failure.
    pub fn run(&mut self) -> Stats {
        let sids: Vec<Sid> = self.servers.keys().copied().collect();
        for sid in sids {
            self.start_server(sid);
        }
        self.at(TICK_MS, Ev::Tick);
        if self.p.fault_every_ms > 0 {
            let d = self.rng.below(2 * self.p.fault_every_ms);
            self.after(d, Ev::Fault);
        }
        let chaos = self.p.chaos_ms;
        self.at(chaos, Ev::Heal);
        let deadline = chaos + self.p.settle_ms;
        while let Some(Reverse(q)) = self.queue.pop() {
            self.now = q.at;
            self.stats.events += 1;
            self.event(q.ev);
            self.check_step();
            if self.healing && self.now.is_multiple_of(TICK_MS) && self.converged() {
                break;
            }
            if self.stats.events > EVENTS_MAX {
                let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
                let mut elect: BTreeMap<(Sid, Sid), u64> = BTreeMap::new();
                for Reverse(q) in self.queue.iter() {
                    let k = format!("{:?}", q.ev);
                    let k = k.split([' ', '(', '{']).next().unwrap_or("").to_string();
                    *kinds.entry(k).or_default() += 1;
                    if let Ev::Elect { from, to, .. } = &q.ev {
                        *elect.entry((*from, *to)).or_default() += 1;
                    }
                }
                self.fail(&format!(
                    "event storm: too many events (a livelock?); queued {kinds:?}, election {elect:?}"
                ));
            }
            if self.now > deadline {
                self.fail("no convergence after healing");
            }
        }
        self.final_checks();
        if self.dump {
            for e in &self.trace {
                println!("{e}");
            }
        }
        self.stats.end_ms = self.now;
        self.stats.clone()
    }

    /// The member an event is handled by, if one alone.
    fn target(&self, ev: &Ev) -> Option<Sid> {
        match ev {
            Ev::Elect { to, .. } => Some(*to),
            Ev::Fsync { sid, .. } | Ev::TxnLogRead { sid, .. } => Some(*sid),
            Ev::QDeliver { conn, to_leader } => {
                self.qconns
                    .get(conn)
                    .map(|c| if *to_leader { c.leader } else { c.learner })
            }
            Ev::QConnect(conn) => self.qconns.get(conn).map(|c| {
                if self.paused.contains_key(&c.learner) {
                    c.learner
                } else {
                    c.leader
                }
            }),
            Ev::CDeliver {
                conn,
                to_server: true,
            } => self.cconns.get(conn).map(|c| c.server),
            _ => None,
        }
    }

    fn event(&mut self, ev: Ev) {
        let now = self.now;
        self.paused.retain(|_, until| *until > now);
        if let Some(until) = self.target(&ev).and_then(|s| self.paused.get(&s)).copied() {
            self.at(until, ev);
            return;
        }
        match ev {
            Ev::Tick => {
                self.tick();
                self.after(TICK_MS, Ev::Tick);
            }
            Ev::Fault => {
                if !self.healing {
                    self.fault();
                    let d = 1 + self.rng.below(2 * self.p.fault_every_ms);
                    self.after(d, Ev::Fault);
                }
            }
            Ev::Heal => self.heal(),
            Ev::Restart(sid) => {
                if !self.is_up(sid) {
                    self.start_server(sid);
                }
            }
            Ev::HealPartition(id) => {
                if self.partitions.remove(&id).is_some() {
                    self.log(format!("partition {id} healed"));
                }
            }
            Ev::Elect {
                from,
                to,
                to_inc,
                nth,
                n,
            } => {
                if self.election_sent.get(&(from, to)) == Some(&nth) {
                    self.deliver_election(from, to, to_inc, n);
                }
            }
            Ev::QConnect(conn) => self.qconnect(conn),
            Ev::QDeliver { conn, to_leader } => self.qdeliver(conn, to_leader),
            Ev::CDeliver { conn, to_server } => self.cdeliver(conn, to_server),
            Ev::Fsync { sid, inc, gen, len } => self.fsync_done(sid, inc, gen, len),
            Ev::TxnLogRead {
                sid,
                inc,
                id,
                result,
            } => {
                if self.servers[&sid].inc == inc && self.is_up(sid) {
                    let mut out = Vec::new();
                    let now = now_of(self.now);
                    self.live(sid)
                        .expect("up")
                        .replica
                        .txn_log_read(id, result, now, &mut out);
                    self.apply(sid, out);
                }
            }
        }
    }

    fn tick(&mut self) {
        let now = now_of(self.now);
        let sids: Vec<Sid> = self.servers.keys().copied().collect();
        for sid in sids {
            if self.paused.contains_key(&sid) {
                continue;
            }
            let Some(l) = self.live(sid) else { continue };
            let mut out = Vec::new();
            l.replica.tick(now, &mut out);
            self.apply(sid, out);
            let Some(l) = self.live(sid) else { continue };
            if l.election_started {
                let acts = l.election.tick();
                let mut out = Vec::new();
                self.election_actions(sid, acts, &mut out);
                self.apply(sid, out);
            }
        }
        for c in 0..self.clients.len() {
            self.client_tick(c);
        }
    }

    // ---- servers -------------------------------------------------------------------

    /// Starts a member from its disk: newest snapshot + the log after it.
    fn start_server(&mut self, sid: Sid) {
        let (tree, last, recent, floor) = {
            let disk = &self.servers[&sid].disk;
            let (mut tree, base) = match disk.snaps.last() {
                Some((z, bytes, _)) => (self.load_snap(bytes), *z),
                None => (DataTree::new(tree_cfg()), 0),
            };
            let mut last = base;
            let mut recent = Vec::new();
            for e in disk.log.iter().filter(|e| e.header.zxid > base) {
                match tree.replay_entry(e) {
                    Ok(None) => {}
                    Ok(Some(m)) => self.fail(&format!("{sid}: recovery digest mismatch: {m}")),
                    Err(err) => self.fail(&format!("{sid}: recovery replay failed: {err}")),
                }
                last = e.header.zxid;
                recent.push((last, e.to_bytes()));
            }
            (tree, last, recent, base)
        };
        let now = now_of(self.now);
        let mut ncfg = NodeConfig::standalone(ZK_TICK_MS);
        ncfg.server_id = sid as u8;
        let node = Node::new(ncfg, tree, last, now);
        let cfg = ReplicaConfig {
            my_sid: sid,
            voters: self.voters.clone(),
            observers: self.observers.clone(),
            tick_ms: ZK_TICK_MS,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            config_text: self.config_text.clone(),
            config_version: 0,
        };
        let srv = self.servers.get_mut(&sid).expect("known sid");
        let (mut replica, out) = Replica::new(
            cfg,
            node,
            srv.disk.accepted_epoch,
            srv.disk.current_epoch,
            floor,
            recent,
            now,
        );
        replica.set_sync_options(self.p.commit_log_count, self.p.txn_log_sync);
        let (z, e) = replica.vote();
        let election = Election::new(
            sid,
            self.voters.iter().copied(),
            self.observers.iter().copied(),
            z,
            e,
        )
        .with_config(ElectionConfig::from_tick_ms(TICK_MS))
        .with_config_text(self.config_text.clone());
        srv.inc += 1;
        srv.live = Some(Live {
            replica,
            election,
            election_started: false,
            held: VecDeque::new(),
            gate: 0,
            released: 0,
            listening: false,
            fsync_in_flight: false,
            leader_conn: None,
            peers: BTreeSet::new(),
        });
        let msg = format!(
            "start {sid} at {} epochs {}/{}",
            zx(last),
            srv.disk.accepted_epoch,
            srv.disk.current_epoch
        );
        self.log(msg);
        self.apply(sid, out);
    }

    fn load_snap(&self, bytes: &[u8]) -> DataTree {
        let mut b = TreeBuilder::new(tree_cfg());
        if let Err(e) = read_snap_stream(bytes, &mut b) {
            self.fail(&format!("snapshot does not read back: {e}"));
        }
        match b.finish() {
            Ok(t) => t,
            Err(e) => self.fail(&format!("snapshot does not load: {e}")),
        }
    }

    fn snap_bytes(&self, tree: &DataTree, zxid: i64) -> Vec<u8> {
        let src = tree.snapshot_source(zxid);
        let mut buf = Vec::new();
        if let Err(e) = write_snap_stream(&src, &mut buf) {
            self.fail(&format!("snapshot does not serialise: {e}"));
        }
        buf
    }

    fn crash(&mut self, sid: Sid) {
        let Some(srv) = self.servers.get_mut(&sid) else {
            return;
        };
        if srv.live.take().is_none() {
            return;
        }
        srv.inc += 1;
        self.paused.remove(&sid);
        let lost = srv.disk.log.len() - srv.disk.durable_len;
        srv.disk.log.truncate(srv.disk.durable_len);
        self.stats.crashes += 1;
        self.log(format!("CRASH {sid} (lost {lost} unsynced entries)"));
        let qs: Vec<u64> = self
            .qconns
            .iter()
            .filter(|(_, c)| !c.dead && (c.learner == sid || c.leader == sid))
            .map(|(id, _)| *id)
            .collect();
        for c in qs {
            self.qcut(c);
        }
        let cs: Vec<u64> = self
            .cconns
            .iter()
            .filter(|(_, c)| !c.dead && c.server == sid)
            .map(|(id, _)| *id)
            .collect();
        for c in cs {
            self.ccut(c);
        }
    }

    /// Carries out a replica's outputs, in order (outputs they cause go after them).
    fn apply(&mut self, sid: Sid, outs: Vec<ReplicaOutput>) {
        self.touched.insert(sid);
        let mut q: VecDeque<ReplicaOutput> = outs.into();
        while let Some(o) = q.pop_front() {
            if !self.is_up(sid) {
                return;
            }
            let mut more = Vec::new();
            self.apply_one(sid, o, &mut more);
            q.extend(more);
        }
    }

    fn apply_one(&mut self, sid: Sid, o: ReplicaOutput, more: &mut Vec<ReplicaOutput>) {
        let now = now_of(self.now);
        match o {
            ReplicaOutput::Client(o) => self.client_output(sid, o),
            ReplicaOutput::Log { zxid, bytes, hold } => {
                let Ok(entry) = TxnEntry::decode(&mut Reader::from_slice(&bytes)) else {
                    self.fail(&format!("{sid}: logs undecodable bytes as {}", zx(zxid)))
                };
                if entry.header.zxid != zxid {
                    self.fail(&format!("{sid}: Log of {} holds another txn", zx(zxid)));
                }
                self.disk_append(sid, entry);
                if hold {
                    let l = self.live(sid).expect("up");
                    l.gate = l.gate.max(zxid);
                }
            }
            ReplicaOutput::Release(z) => {
                self.record_commits(sid, z);
                let l = self.live(sid).expect("up");
                l.released = l.released.max(z);
                let mut go = Vec::new();
                while l.held.front().is_some_and(|(g, _)| *g <= l.released) {
                    go.push(l.held.pop_front().expect("front").1);
                }
                for o in go {
                    self.client_effect(sid, o);
                }
            }
            ReplicaOutput::DiscardHeld => {
                let l = self.live(sid).expect("up");
                l.held.clear();
                l.released = l.gate;
            }
            ReplicaOutput::SendPeer { peer, packet } => {
                if self.live(sid).expect("up").peers.contains(&peer) {
                    self.qsend(peer, false, QMsg::Packet(packet));
                }
            }
            ReplicaOutput::SendSnapshot {
                peer,
                zxid,
                snapshot,
            } => {
                if self.live(sid).expect("up").peers.contains(&peer) {
                    let mut buf = Vec::new();
                    if let Err(e) = write_snap_stream(&*snapshot.0, &mut buf) {
                        self.fail(&format!("SNAP stream does not serialise: {e}"));
                    }
                    self.stats.snaps_sent += 1;
                    self.log(format!("{sid} SNAP {} to conn {peer}", zx(zxid)));
                    self.qsend(
                        peer,
                        false,
                        QMsg::Packet(QuorumPacket::new(PacketType::Snap, zxid, None)),
                    );
                    let cover = self
                        .history(sid)
                        .into_iter()
                        .filter(|x| *x <= zxid)
                        .collect();
                    self.qsend(
                        peer,
                        false,
                        QMsg::Snap {
                            zxid,
                            bytes: buf,
                            cover,
                        },
                    );
                }
            }
            ReplicaOutput::ClosePeer { peer } => {
                if self.live(sid).expect("up").peers.remove(&peer) {
                    self.qclose(peer, false);
                }
            }
            ReplicaOutput::ListenForLearners(on) => {
                let l = self.live(sid).expect("up");
                l.listening = on;
                if !on {
                    let peers: Vec<u64> = std::mem::take(&mut l.peers).into_iter().collect();
                    for p in peers {
                        self.qclose(p, false);
                    }
                }
            }
            ReplicaOutput::ConnectLeader { sid: leader } => {
                let id = self.id();
                let inc = self.servers[&sid].inc;
                self.qconns.insert(
                    id,
                    QConn {
                        learner: sid,
                        leader,
                        learner_inc: inc,
                        leader_inc: 0,
                        established: false,
                        dead: false,
                        to_leader: VecDeque::new(),
                        to_learner: VecDeque::new(),
                        last_to_leader: 0,
                        last_to_learner: 0,
                        learner_closed: false,
                        leader_closed: false,
                        connect_tries: 0,
                    },
                );
                self.live(sid).expect("up").leader_conn = Some(id);
                let d = self.delay();
                self.after(d, Ev::QConnect(id));
            }
            ReplicaOutput::SendLeader(p) => {
                if let Some(c) = self.live(sid).expect("up").leader_conn {
                    self.qsend(c, true, QMsg::Packet(p));
                }
            }
            ReplicaOutput::CloseLeader => {
                if let Some(c) = self.live(sid).expect("up").leader_conn.take() {
                    self.qclose(c, true);
                }
            }
            ReplicaOutput::PersistAcceptedEpoch(e) => {
                let d = &mut self.servers.get_mut(&sid).expect("known").disk;
                if e < d.accepted_epoch {
                    let old = d.accepted_epoch;
                    self.fail(&format!("{sid}: acceptedEpoch goes back {old} -> {e}"));
                }
                d.accepted_epoch = e;
            }
            ReplicaOutput::PersistCurrentEpoch(e) => {
                let d = &mut self.servers.get_mut(&sid).expect("known").disk;
                if e < d.current_epoch || e > d.accepted_epoch {
                    let (c, a) = (d.current_epoch, d.accepted_epoch);
                    self.fail(&format!(
                        "{sid}: currentEpoch {c} -> {e} with acceptedEpoch {a}"
                    ));
                }
                d.current_epoch = e;
                self.live(sid).expect("up").election.update_election_vote(e);
            }
            ReplicaOutput::Truncate { zxid, reload } => self.truncate(sid, zxid, reload),
            ReplicaOutput::InstallSnapshot { zxid } => {
                let bytes = {
                    let l = self.servers[&sid].live.as_ref().expect("up");
                    self.snap_bytes(l.replica.tree(), zxid)
                };
                let srv = self.servers.get_mut(&sid).expect("known");
                let cover = std::mem::take(&mut srv.incoming_cover);
                let d = &mut srv.disk;
                d.snaps = vec![(zxid, bytes, cover)];
                d.log.clear();
                d.durable_len = 0;
                d.gen += 1;
                self.live(sid).expect("up").fsync_in_flight = false;
                self.log(format!("{sid} installed snapshot {}", zx(zxid)));
            }
            ReplicaOutput::RoleChanged(role) => {
                self.log(format!("{sid} role {role:?}"));
                if role == Role::Leading {
                    self.established(sid);
                }
            }
            ReplicaOutput::ReadTxnLog { id, after, upto } => {
                self.stats.txn_log_reads += 1;
                let result = self.read_txn_log(sid, after, upto);
                self.log(format!(
                    "{sid} reads its txn log after {} for conn {}: {}",
                    zx(after),
                    id.peer,
                    match &result {
                        Ok(r) => format!("{} txns", r.entries.len()),
                        Err(e) => e.clone(),
                    }
                ));
                let inc = self.servers[&sid].inc;
                let d = 1 + self.rng.below(4 * self.p.fsync_max_ms);
                self.after(
                    d,
                    Ev::TxnLogRead {
                        sid,
                        inc,
                        id,
                        result,
                    },
                );
            }
            ReplicaOutput::SyncedFromTxnLog {
                peer,
                kind,
                why_not,
                ..
            } => {
                if kind == SyncKind::Snap {
                    self.stats.txn_log_snaps += 1;
                } else {
                    self.stats.txn_log_diffs += 1;
                }
                self.log(format!(
                    "{sid} syncs conn {peer} by {kind:?} after a txn log read ({why_not:?})"
                ));
            }
            ReplicaOutput::Elect => {
                let l = self.live(sid).expect("up");
                let (z, e) = l.replica.vote();
                let acts = if l.election_started {
                    l.election.restart(z, e)
                } else {
                    l.election_started = true;
                    l.election.start()
                };
                self.log(format!("{sid} elects with {} epoch {e}", zx(z)));
                self.election_actions(sid, acts, more);
            }
        }
        let _ = now;
    }

    fn election_actions(&mut self, sid: Sid, acts: Vec<EAction>, more: &mut Vec<ReplicaOutput>) {
        for a in acts {
            match a {
                EAction::Send { to, notification } => self.esend(sid, to, notification),
                EAction::Broadcast(n) => {
                    let vs: Vec<Sid> = self.voters.iter().copied().filter(|v| *v != sid).collect();
                    for v in vs {
                        self.esend(sid, v, n.clone());
                    }
                }
                EAction::Decided { leader, state } => {
                    self.stats.elections_decided += 1;
                    self.log(format!("{sid} decided {state:?} leader {leader}"));
                    let now = now_of(self.now);
                    let l = self.live(sid).expect("up");
                    if l.replica.role() != Role::Looking {
                        continue;
                    }
                    if leader == sid {
                        l.replica.lead(now, more);
                    } else {
                        l.replica.follow(leader, now, more);
                    }
                }
            }
        }
    }

    fn esend(&mut self, from: Sid, to: Sid, n: Notification) {
        if self.blocked(from, to) || self.rng.chance(self.p.election_drop_per_mille) {
            return;
        }
        let to_inc = match self.servers.get(&to) {
            Some(s) if s.live.is_some() => s.inc,
            _ => return,
        };
        let d = self.delay();
        let nth = {
            let c = self.election_sent.entry((from, to)).or_default();
            *c += 1;
            *c
        };
        if self.rng.chance(self.p.election_dup_per_mille) {
            let d2 = self.delay() * 3;
            self.after(
                d2,
                Ev::Elect {
                    from,
                    to,
                    to_inc,
                    nth,
                    n: n.clone(),
                },
            );
        }
        self.after(
            d,
            Ev::Elect {
                from,
                to,
                to_inc,
                nth,
                n,
            },
        );
    }

    fn deliver_election(&mut self, from: Sid, to: Sid, to_inc: u64, n: Notification) {
        if self.blocked(from, to) || self.servers[&to].inc != to_inc {
            return;
        }
        let Some(l) = self.live(to) else { return };
        if !l.election_started {
            return;
        }
        let acts = l.election.step(from, n);
        let mut out = Vec::new();
        self.election_actions(to, acts, &mut out);
        self.apply(to, out);
    }

    /// The zxids of a member's history on disk: what its newest snapshot covers, then the log.
    fn history(&self, sid: Sid) -> Vec<i64> {
        let d = &self.servers[&sid].disk;
        let (base, mut h) = match d.snaps.last() {
            Some((z, _, cover)) => (*z, cover.clone()),
            None => (0, Vec::new()),
        };
        h.extend(d.log.iter().map(|e| e.header.zxid).filter(|z| *z > base));
        h
    }

    /// A leader became established: one per epoch, and it holds every committed txn.
    fn established(&mut self, sid: Sid) {
        self.stats.established += 1;
        let (epoch, last_logged, digest, tree_zxid) = {
            let r = &self.servers[&sid].live.as_ref().expect("up").replica;
            (
                r.current_epoch(),
                r.last_logged(),
                r.tree().digest(),
                r.node().last_zxid(),
            )
        };
        if let Some(other) = self.leaders.insert(epoch, sid) {
            if other != sid {
                self.fail(&format!(
                    "two leaders established in epoch {epoch}: {other} and {sid}"
                ));
            }
        }
        let _ = tree_zxid;
        // Every committed txn must be in the new leader's history.
        let history: BTreeSet<i64> = self.history(sid).into_iter().collect();
        let disk = &self.servers[&sid].disk;
        let snap_z = disk.snaps.last().map_or(0, |s| s.0);
        for (z, t) in self.truth.iter() {
            if t.committed_ms.is_some() && !history.contains(z) {
                self.fail(&format!(
                    "leader {sid} of epoch {epoch} lacks committed txn {} (snapshot {}, log to {})",
                    zx(*z),
                    zx(snap_z),
                    zx(last_logged)
                ));
            }
        }
        // What its snapshot covers is committed too.
        let now = self.now;
        for z in history.iter().filter(|z| **z <= snap_z) {
            match self.truth.get_mut(z) {
                Some(t) => {
                    if t.committed_ms.is_none() {
                        t.committed_ms = Some(now);
                        self.stats.writes_committed += 1;
                    }
                }
                None => self.fail(&format!("{sid}: history holds {} nobody created", zx(*z))),
            }
        }
        // Its whole history is committed now (Zab: a new leader commits its history).
        let entries: Vec<(i64, Bytes)> = disk
            .log
            .iter()
            .map(|e| (e.header.zxid, e.to_bytes()))
            .collect();
        for (z, b) in entries {
            self.commit_truth(sid, z, &b);
        }
        if let Some(t) = self.truth.get(&last_logged) {
            if let Some(d) = t.digest {
                if d != digest {
                    self.fail(&format!(
                        "leader {sid} tree digest {digest} at {} differs from the txn's {d}",
                        zx(last_logged)
                    ));
                }
            }
        }
        self.log(format!(
            "{sid} ESTABLISHED epoch {epoch} at {}",
            zx(last_logged)
        ));
    }

    fn commit_truth(&mut self, sid: Sid, z: i64, bytes: &Bytes) {
        let now = self.now;
        match self.truth.get_mut(&z) {
            Some(t) => {
                if t.bytes != bytes {
                    self.fail(&format!(
                        "{sid}: txn {} differs from the one first logged",
                        zx(z)
                    ));
                }
                if t.committed_ms.is_none() {
                    t.committed_ms = Some(now);
                    self.stats.writes_committed += 1;
                }
            }
            None => self.fail(&format!("{sid}: commits txn {} nobody created", zx(z))),
        }
    }

    /// A leader released up to `z`: every txn of its log up to there is committed.
    fn record_commits(&mut self, sid: Sid, z: i64) {
        let released = self.servers[&sid].live.as_ref().expect("up").released;
        let entries: Vec<(i64, Bytes)> = self.servers[&sid]
            .disk
            .log
            .iter()
            .rev()
            .take_while(|e| e.header.zxid > released)
            .filter(|e| e.header.zxid <= z)
            .map(|e| (e.header.zxid, e.to_bytes()))
            .collect();
        for (zz, b) in entries {
            self.commit_truth(sid, zz, &b);
        }
    }

    fn disk_append(&mut self, sid: Sid, entry: TxnEntry) {
        let z = entry.header.zxid;
        let bytes = entry.to_bytes();
        match self.truth.get(&z) {
            Some(t) if t.bytes != bytes => self.fail(&format!(
                "{sid}: logs txn {} with other bytes than its leader",
                zx(z)
            )),
            Some(_) => {}
            None => {
                let digest = entry.digest.as_ref().map(|d| d.tree_digest);
                let write = write_of(&entry.txn);
                self.truth.insert(
                    z,
                    Truth {
                        bytes,
                        digest,
                        committed_ms: None,
                        write,
                    },
                );
            }
        }
        let srv = self.servers.get_mut(&sid).expect("known");
        // The history on disk ends at the last logged txn or at the newest snapshot, which
        // may be ahead of the log (it is taken from the tree, which can be ahead of fsync).
        let history_end = srv
            .disk
            .log
            .last()
            .map(|e| e.header.zxid)
            .max(srv.disk.snaps.last().map(|s| s.0));
        if let Some(lz) = history_end {
            // Within an epoch the one leader numbers txns consecutively: a hole is a lost txn.
            if lz >= z || (epoch_of(lz) == epoch_of(z) && lz + 1 != z) {
                self.fail(&format!("{sid}: log goes from {} to {}", zx(lz), zx(z)));
            }
        }
        if let Some((sz, _, _)) = srv.disk.snaps.last() {
            if *sz >= z {
                let sz = *sz;
                self.fail(&format!(
                    "{sid}: logs {} at or below its snapshot {}",
                    zx(z),
                    zx(sz)
                ));
            }
        }
        srv.disk.log.push(entry);
        self.schedule_fsync(sid);
    }

    fn schedule_fsync(&mut self, sid: Sid) {
        let srv = self.servers.get_mut(&sid).expect("known");
        let (inc, gen, len) = (srv.inc, srv.disk.gen, srv.disk.log.len());
        if len <= srv.disk.durable_len {
            return;
        }
        let Some(l) = srv.live.as_mut() else { return };
        if l.fsync_in_flight {
            return;
        }
        l.fsync_in_flight = true;
        let d = 1 + self.rng.below(self.p.fsync_max_ms);
        self.after(d, Ev::Fsync { sid, inc, gen, len });
    }

    fn fsync_done(&mut self, sid: Sid, inc: u64, gen: u64, len: usize) {
        let srv = self.servers.get_mut(&sid).expect("known");
        if srv.inc != inc || srv.disk.gen != gen || srv.live.is_none() {
            return;
        }
        srv.live.as_mut().expect("up").fsync_in_flight = false;
        let len = len.min(srv.disk.log.len());
        if len > srv.disk.durable_len {
            srv.disk.durable_len = len;
        }
        let z = match srv.disk.durable_len {
            0 => None,
            n => Some(srv.disk.log[n - 1].header.zxid),
        };
        if let Some(z) = z {
            let now = now_of(self.now);
            let mut out = Vec::new();
            self.live(sid)
                .expect("up")
                .replica
                .durable(z, now, &mut out);
            self.apply(sid, out);
        }
        if self.is_up(sid) && self.rng.chance(self.p.snapshot_per_mille) {
            self.take_snapshot(sid);
        }
        if self.is_up(sid) {
            self.schedule_fsync(sid);
        }
    }

    /// A periodic snapshot (ZooKeeper's snapCount): the tree at the zxid it reflects.
    fn take_snapshot(&mut self, sid: Sid) {
        let (z, bytes) = {
            let r = &self.servers[&sid].live.as_ref().expect("up").replica;
            let z = r.node().last_zxid().min(r.last_logged());
            if counter_of(z) == 0 && z != 0 {
                return;
            }
            (z, self.snap_bytes(r.tree(), z))
        };
        let cover = self.history(sid).into_iter().filter(|x| *x <= z).collect();
        let d = &mut self.servers.get_mut(&sid).expect("known").disk;
        if d.snaps.last().is_some_and(|s| s.0 >= z) {
            return;
        }
        // The tree may be ahead of the durable log: the snapshot makes that part durable
        // (a snapshot is only written from applied state, and recovery replays after it).
        d.snaps.push((z, bytes, cover));
        self.log(format!("{sid} snapshot at {}", zx(z)));
    }

    /// What the server's txn log read would find: the records of the fsynced log from the
    /// one before `after` (one simulated file, so `prev` is absent only when the log starts
    /// past `after`) up to `upto`. One read in twenty fails, as a corrupt or purged file
    /// would make it.
    fn read_txn_log(&mut self, sid: Sid, after: i64, upto: i64) -> Result<TxnLogRead, String> {
        if self.rng.chance(50) {
            return Err("injected txn log read failure".into());
        }
        let d = &self.servers[&sid].disk;
        let mut r = TxnLogRead::default();
        for e in &d.log[..d.durable_len] {
            let z = e.header.zxid;
            if z > upto {
                break;
            }
            if z < after {
                r.prev = Some(z);
            } else {
                r.entries.push((z, e.to_bytes()));
            }
        }
        Ok(r)
    }

    fn truncate(&mut self, sid: Sid, zxid: i64, reload: bool) {
        self.stats.truncates += 1;
        self.log(format!("{sid} TRUNC to {} reload {reload}", zx(zxid)));
        let srv = self.servers.get_mut(&sid).expect("known");
        let d = &mut srv.disk;
        let keep = d.log.partition_point(|e| e.header.zxid <= zxid);
        d.log.truncate(keep);
        d.durable_len = d.durable_len.min(keep);
        d.snaps.retain(|s| s.0 <= zxid);
        d.gen += 1;
        let ends_at = d
            .log
            .last()
            .map(|e| e.header.zxid)
            .max(d.snaps.last().map(|s| s.0))
            .unwrap_or(0);
        if ends_at != zxid {
            self.fail(&format!(
                "{sid}: TRUNC to {} leaves a history ending at {}: the learner never had that txn",
                zx(zxid),
                zx(ends_at)
            ));
        }
        srv.live.as_mut().expect("up").fsync_in_flight = false;
        if reload {
            self.stats.reloads += 1;
            let (tree, last) = {
                let disk = &self.servers[&sid].disk;
                let (mut tree, base) = match disk.snaps.last() {
                    Some((z, bytes, _)) => (self.load_snap(bytes), *z),
                    None => (DataTree::new(tree_cfg()), 0),
                };
                let mut last = base;
                for e in disk.log.iter().filter(|e| e.header.zxid > base) {
                    if let Err(err) = tree.replay_entry(e) {
                        self.fail(&format!("{sid}: reload replay failed: {err}"));
                    }
                    last = e.header.zxid;
                }
                (tree, last)
            };
            if last != zxid {
                self.fail(&format!(
                    "{sid}: TRUNC to {} but disk only rebuilds to {}",
                    zx(zxid),
                    zx(last)
                ));
            }
            let now = now_of(self.now);
            self.live(sid).expect("up").replica.reload(tree, zxid, now);
            self.touched.insert(sid);
        }
        self.schedule_fsync(sid);
    }

    // ---- leader / learner streams ----------------------------------------------------

    fn qconnect(&mut self, conn: u64) {
        let Some(c) = self.qconns.get(&conn) else {
            return;
        };
        let (learner, leader, linc) = (c.learner, c.leader, c.learner_inc);
        let learner_ok = self.servers[&learner].inc == linc
            && self.servers[&learner]
                .live
                .as_ref()
                .is_some_and(|l| l.leader_conn == Some(conn));
        if !learner_ok {
            self.qconns.get_mut(&conn).expect("exists").dead = true;
            return;
        }
        let leader_ok = !self.blocked(learner, leader)
            && self.servers[&leader]
                .live
                .as_ref()
                .is_some_and(|l| l.listening);
        let now = now_of(self.now);
        if !leader_ok {
            let c = self.qconns.get_mut(&conn).expect("exists");
            c.connect_tries += 1;
            if c.connect_tries < CONNECT_TRIES_MAX {
                self.after(100, Ev::QConnect(conn));
                return;
            }
            c.dead = true;
            self.log(format!("{learner} cannot connect to leader {leader}"));
            let l = self.live(learner).expect("up");
            l.leader_conn = None;
            let mut out = Vec::new();
            l.replica.leader_disconnected(now, &mut out);
            self.apply(learner, out);
            return;
        }
        let leader_inc = self.servers[&leader].inc;
        let c = self.qconns.get_mut(&conn).expect("exists");
        c.established = true;
        c.leader_inc = leader_inc;
        self.log(format!(
            "{learner} connected to leader {leader} (conn {conn})"
        ));
        let l = self.live(leader).expect("up");
        l.peers.insert(conn);
        let mut out = Vec::new();
        l.replica.peer_connected(conn, now, &mut out);
        self.apply(leader, out);
        if let Some(l) = self.live(learner) {
            if l.leader_conn == Some(conn) {
                let mut out = Vec::new();
                l.replica.leader_connected(now, &mut out);
                self.apply(learner, out);
            }
        }
    }

    fn qsend(&mut self, conn: u64, to_leader: bool, m: QMsg) {
        let d = self.delay();
        let now = self.now;
        let Some(c) = self.qconns.get_mut(&conn) else {
            return;
        };
        if c.dead || !c.established {
            return;
        }
        let closed = if to_leader {
            c.learner_closed
        } else {
            c.leader_closed
        };
        if closed {
            return;
        }
        let at = if to_leader {
            let at = (now + d).max(c.last_to_leader);
            c.last_to_leader = at;
            c.to_leader.push_back(m);
            at
        } else {
            let at = (now + d).max(c.last_to_learner);
            c.last_to_learner = at;
            c.to_learner.push_back(m);
            at
        };
        self.at(at, Ev::QDeliver { conn, to_leader });
    }

    /// One end closes: EOF follows what it sent.
    fn qclose(&mut self, conn: u64, by_learner: bool) {
        let Some(c) = self.qconns.get_mut(&conn) else {
            return;
        };
        if !c.established {
            c.dead = true;
            return;
        }
        self.qsend(conn, by_learner, QMsg::Eof);
        let c = self.qconns.get_mut(&conn).expect("exists");
        if by_learner {
            c.learner_closed = true;
        } else {
            c.leader_closed = true;
        }
    }

    /// The connection breaks: both ends learn it now, in-flight data is lost.
    fn qcut(&mut self, conn: u64) {
        let Some(c) = self.qconns.get_mut(&conn) else {
            return;
        };
        if c.dead {
            return;
        }
        c.dead = true;
        c.to_leader.clear();
        c.to_learner.clear();
        let (learner, leader) = (c.learner, c.leader);
        self.log(format!("cut conn {conn} {learner}->{leader}"));
        let now = now_of(self.now);
        if let Some(l) = self.live(leader) {
            if l.peers.remove(&conn) {
                let mut out = Vec::new();
                l.replica.peer_disconnected(conn, now, &mut out);
                self.apply(leader, out);
            }
        }
        if let Some(l) = self.live(learner) {
            if l.leader_conn == Some(conn) {
                l.leader_conn = None;
                let mut out = Vec::new();
                l.replica.leader_disconnected(now, &mut out);
                self.apply(learner, out);
            }
        }
    }

    fn qdeliver(&mut self, conn: u64, to_leader: bool) {
        let Some(c) = self.qconns.get_mut(&conn) else {
            return;
        };
        if c.dead {
            return;
        }
        let m = if to_leader {
            c.to_leader.pop_front()
        } else {
            c.to_learner.pop_front()
        };
        let Some(m) = m else { return };
        let (learner, leader) = (c.learner, c.leader);
        let now = now_of(self.now);
        if self.verbose {
            let what = match &m {
                QMsg::Packet(p) => format!("{:?} {}", p.packet_type, zx(p.zxid)),
                QMsg::Snap { zxid, .. } => format!("snapshot {}", zx(*zxid)),
                QMsg::Eof => "EOF".into(),
            };
            let (f, t) = if to_leader {
                (learner, leader)
            } else {
                (leader, learner)
            };
            self.log(format!("  {f}->{t} {what}"));
        }
        if to_leader {
            let Some(l) = self.live(leader) else { return };
            if !l.peers.contains(&conn) {
                return;
            }
            let mut out = Vec::new();
            match m {
                QMsg::Packet(p) => l.replica.peer_packet(conn, p, now, &mut out),
                QMsg::Eof => {
                    l.peers.remove(&conn);
                    l.replica.peer_disconnected(conn, now, &mut out);
                }
                QMsg::Snap { .. } => self.fail("a learner sent a snapshot"),
            }
            self.apply(leader, out);
        } else {
            let Some(l) = self.live(learner) else { return };
            if l.leader_conn != Some(conn) {
                return;
            }
            let mut out = Vec::new();
            match m {
                QMsg::Packet(p) => l.replica.leader_packet(p, now, &mut out),
                QMsg::Eof => {
                    l.leader_conn = None;
                    l.replica.leader_disconnected(now, &mut out);
                }
                QMsg::Snap { zxid, bytes, cover } => {
                    let tree = self.load_snap(&bytes);
                    self.servers
                        .get_mut(&learner)
                        .expect("known")
                        .incoming_cover = cover;
                    let l = self.live(learner).expect("up");
                    l.replica.leader_snapshot(zxid, tree, now, &mut out);
                }
            }
            self.apply(learner, out);
        }
    }

    // ---- clients: server side --------------------------------------------------------

    fn client_output(&mut self, sid: Sid, o: Output) {
        match o {
            Output::Append(_) | Output::Forward { .. } | Output::Revalidate { .. } => self.fail(
                &format!("{sid}: a pipeline-internal output reached the shell"),
            ),
            other => {
                let l = self.live(sid).expect("up");
                if l.gate > l.released || !l.held.is_empty() {
                    let g = l.gate;
                    l.held.push_back((g, other));
                } else {
                    self.client_effect(sid, other);
                }
            }
        }
    }

    fn client_effect(&mut self, sid: Sid, o: Output) {
        match o {
            Output::Send { conn, frame, .. } => {
                self.csend(conn, false, None, Some(SMsg::Frame(frame)))
            }
            Output::Close { conn } => {
                if let Some(l) = self.live(sid) {
                    l.replica.disconnected(conn);
                }
                let Some(c) = self.cconns.get_mut(&conn) else {
                    return;
                };
                if c.dead || c.server_closed {
                    return;
                }
                self.csend(conn, false, None, Some(SMsg::Eof));
                if let Some(c) = self.cconns.get_mut(&conn) {
                    c.server_closed = true;
                }
            }
            _ => unreachable!("handled in client_output"),
        }
    }

    fn csend(&mut self, conn: ConnId, to_server: bool, cm: Option<CMsg>, sm: Option<SMsg>) {
        let d = self.delay();
        let now = self.now;
        let Some(c) = self.cconns.get_mut(&conn) else {
            return;
        };
        if c.dead {
            return;
        }
        let at = if to_server {
            if c.client_closed {
                return;
            }
            let at = (now + d).max(c.last_to_server);
            c.last_to_server = at;
            c.to_server.push_back(cm.expect("client message"));
            at
        } else {
            if c.server_closed {
                return;
            }
            let at = (now + d).max(c.last_to_client);
            c.last_to_client = at;
            c.to_client.push_back(sm.expect("server message"));
            at
        };
        self.at(at, Ev::CDeliver { conn, to_server });
    }

    fn ccut(&mut self, conn: u64) {
        let Some(c) = self.cconns.get_mut(&conn) else {
            return;
        };
        if c.dead {
            return;
        }
        c.dead = true;
        c.to_client.clear();
        c.to_server.clear();
        let (client, server, inc) = (c.client, c.server, c.server_inc);
        if self.servers[&server].inc == inc {
            if let Some(l) = self.live(server) {
                l.replica.disconnected(conn);
            }
        }
        self.client_lost(client, conn);
    }

    fn cdeliver(&mut self, conn: u64, to_server: bool) {
        let Some(c) = self.cconns.get_mut(&conn) else {
            return;
        };
        if c.dead {
            return;
        }
        if to_server {
            let Some(m) = c.to_server.pop_front() else {
                return;
            };
            let (server, inc) = (c.server, c.server_inc);
            if self.servers[&server].inc != inc || !self.is_up(server) {
                return;
            }
            let now = now_of(self.now);
            let mut out = Vec::new();
            let l = self.live(server).expect("up");
            match m {
                CMsg::Connect(req) => l.replica.connect(conn, "10.0.0.1", &req, now, &mut out),
                CMsg::Req { xid, op, req } => {
                    // Through the real codec, as the server would decode it.
                    let mut w = Writer::new();
                    req.encode_body(&mut w);
                    let body = w.into_bytes();
                    let decoded = Request::decode(op, &mut Reader::from_slice(&body));
                    l.replica.request(conn, xid, op, decoded, now, &mut out)
                }
                CMsg::Eof => {
                    l.replica.disconnected(conn);
                    self.touched.insert(server);
                    if let Some(c) = self.cconns.get_mut(&conn) {
                        c.dead = true;
                    }
                }
            }
            self.apply(server, out);
        } else {
            let Some(m) = c.to_client.pop_front() else {
                return;
            };
            let client = c.client;
            match m {
                SMsg::Frame(f) => self.client_frame(client, conn, f),
                SMsg::Eof => {
                    if let Some(c) = self.cconns.get_mut(&conn) {
                        c.dead = true;
                    }
                    self.client_lost(client, conn);
                }
            }
        }
    }

    // ---- clients: client side ------------------------------------------------------

    fn client_tick(&mut self, ci: usize) {
        let now = self.now;
        let c = &self.clients[ci];
        match c.conn {
            None => {
                if now >= c.retry_ms {
                    self.client_connect(ci);
                }
            }
            Some(conn) if !c.connected => {
                if now - c.conn_started_ms > 1_500 {
                    self.client_close(ci, conn);
                }
            }
            Some(conn) => {
                let timeout = SESSION_TIMEOUT_MS as u64;
                if now - c.last_recv_ms > timeout * 2 / 3 {
                    self.client_close(ci, conn);
                    return;
                }
                if c.pending.is_empty() && now - c.last_sent_ms > timeout / 3 {
                    self.client_send(ci, -2, OpCode::Ping.code(), Request::Ping, None);
                    return;
                }
                let c = &self.clients[ci];
                if !self.healing && c.pending.len() < PIPELINE_MAX && now >= c.next_op_ms {
                    self.client_op(ci);
                }
            }
        }
    }

    fn client_connect(&mut self, ci: usize) {
        let sids: Vec<Sid> = self.servers.keys().copied().collect();
        let server = sids[self.rng.below(sids.len() as u64) as usize];
        let id = self.id();
        let inc = self.servers[&server].inc;
        self.cconns.insert(
            id,
            CConn {
                client: ci,
                server,
                server_inc: inc,
                dead: !self.is_up(server),
                to_server: VecDeque::new(),
                to_client: VecDeque::new(),
                last_to_server: 0,
                last_to_client: 0,
                server_closed: false,
                client_closed: false,
            },
        );
        let now = self.now;
        if self.verbose {
            self.log(format!("client {ci} connects to {server} (conn {id})"));
        }
        let c = &mut self.clients[ci];
        c.conn = Some(id);
        c.connected = false;
        c.conn_started_ms = now;
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: c.last_zxid,
            timeout_ms: SESSION_TIMEOUT_MS,
            session_id: c.session_id,
            passwd: c.passwd.clone(),
            read_only: Some(false),
        };
        self.csend(id, true, Some(CMsg::Connect(req)), None);
    }

    fn client_close(&mut self, ci: usize, conn: u64) {
        self.csend(conn, true, Some(CMsg::Eof), None);
        if let Some(c) = self.cconns.get_mut(&conn) {
            c.client_closed = true;
        }
        self.client_lost(ci, conn);
    }

    /// The client's connection is gone: outstanding requests have unknown outcomes.
    fn client_lost(&mut self, ci: usize, conn: u64) {
        let now = self.now;
        let back = 20 + self.rng.below(200);
        if self.verbose && self.clients[ci].conn == Some(conn) {
            self.log(format!("client {ci} lost conn {conn}"));
        }
        let c = &mut self.clients[ci];
        if c.conn != Some(conn) {
            return;
        }
        c.conn = None;
        c.connected = false;
        c.retry_ms = now + back;
        for (_, _, h) in c.pending.drain(..) {
            if let Some(h) = h {
                if self.history[h].outcome == Outcome::Pending {
                    self.history[h].outcome = Outcome::Unknown;
                    self.stats.ops_unknown += 1;
                }
            }
        }
    }

    fn client_send(&mut self, ci: usize, xid: i32, op: i32, req: Request, h: Option<usize>) {
        let now = self.now;
        let c = &mut self.clients[ci];
        let Some(conn) = c.conn else { return };
        c.pending.push_back((xid, op, h));
        c.last_sent_ms = now;
        self.csend(conn, true, Some(CMsg::Req { xid, op, req }), None);
    }

    fn client_op(&mut self, ci: usize) {
        let now = self.now;
        let key = KEYS[self.rng.below(KEYS.len() as u64) as usize].to_string();
        let roll = self.rng.below(100);
        let gap = 1 + self.rng.below(2 * self.p.op_every_ms);
        let c = &mut self.clients[ci];
        c.next_op_ms = now + gap;
        let session_id = c.session_id;
        let hop = |kind, value: Option<String>, after_sync_ms| HOp {
            client: ci,
            session_id,
            kind,
            key: key.clone(),
            value,
            invoked_ms: now,
            answered_ms: None,
            outcome: Outcome::Pending,
            after_sync_ms,
        };
        let acl = vec![Acl::new(corral_proto::perms::ALL, "world", "anyone")];
        let xid = |c: &mut Client| {
            c.next_xid += 1;
            c.next_xid
        };
        if roll < 15 || roll < 50 {
            c.written += 1;
            let value = format!("c{ci}-{}", c.written);
            let create = roll < 15;
            let x = xid(c);
            let (kind, op, req) = if create {
                (
                    HKind::Create,
                    OpCode::Create.code(),
                    Request::Create(CreateRequest {
                        path: key.clone(),
                        data: Some(Bytes::from(value.clone())),
                        acl: Some(acl),
                        flags: 0,
                        ttl: None,
                    }),
                )
            } else {
                (
                    HKind::Set,
                    OpCode::SetData.code(),
                    Request::SetData(SetDataRequest {
                        path: key.clone(),
                        data: Some(Bytes::from(value.clone())),
                        version: -1,
                    }),
                )
            };
            let h = hop(kind, Some(value), None);
            self.history.push(h);
            let hi = self.history.len() - 1;
            self.client_send(ci, x, op, req, Some(hi));
        } else if roll < 80 {
            let x = xid(c);
            let h = hop(HKind::Get, None, None);
            self.history.push(h);
            let hi = self.history.len() - 1;
            let req = Request::GetData(PathWatch {
                path: key.clone(),
                watch: false,
            });
            self.client_send(ci, x, OpCode::GetData.code(), req, Some(hi));
        } else {
            let x1 = xid(c);
            let x2 = xid(c);
            let hs = hop(HKind::Sync, None, None);
            let hg = hop(HKind::Get, None, Some(now));
            self.history.push(hs);
            let hsi = self.history.len() - 1;
            self.history.push(hg);
            let hgi = self.history.len() - 1;
            self.client_send(
                ci,
                x1,
                OpCode::Sync.code(),
                Request::Sync { path: key.clone() },
                Some(hsi),
            );
            let req = Request::GetData(PathWatch {
                path: key.clone(),
                watch: false,
            });
            self.client_send(ci, x2, OpCode::GetData.code(), req, Some(hgi));
        }
    }

    fn client_frame(&mut self, ci: usize, conn: u64, frame: Bytes) {
        let now = self.now;
        if self.clients[ci].conn != Some(conn) {
            return;
        }
        self.clients[ci].last_recv_ms = now;
        let mut r = Reader::from_slice(&frame);
        let Ok(len) = r.read_i32("len") else {
            self.fail(&format!("client {ci}: short frame"))
        };
        if len as usize != frame.len() - 4 {
            self.fail(&format!(
                "client {ci}: frame length {len} of {} bytes",
                frame.len()
            ));
        }
        if !self.clients[ci].connected {
            let Ok(resp) = ConnectResponse::read(&mut r) else {
                self.fail(&format!("client {ci}: bad ConnectResponse"))
            };
            let c = &mut self.clients[ci];
            if resp.session_id == 0 || resp.timeout_ms <= 0 {
                // Expired or unknown: start a new session on the next connection.
                c.session_id = 0;
                c.passwd = Bytes::from_static(&[0; 16]);
                return;
            }
            if c.session_id != 0 && c.session_id != resp.session_id {
                self.fail(&format!("client {ci}: reconnect gave another session"));
            }
            c.session_id = resp.session_id;
            c.passwd = resp.passwd;
            c.connected = true;
            return;
        }
        let Ok(hdr) = ReplyHeader::read(&mut r) else {
            self.fail(&format!("client {ci}: bad ReplyHeader"))
        };
        if hdr.xid == -1 {
            return;
        }
        let Some((xid, op, h)) = self.clients[ci].pending.pop_front() else {
            self.fail(&format!(
                "client {ci}: reply xid {} with nothing pending",
                hdr.xid
            ))
        };
        if hdr.xid != xid {
            self.fail(&format!(
                "client {ci}: reply xid {} but expected {xid}",
                hdr.xid
            ));
        }
        if xid == -2 {
            return;
        }
        if hdr.zxid > 0 {
            if hdr.zxid < self.clients[ci].last_zxid {
                let last = self.clients[ci].last_zxid;
                self.fail(&format!(
                    "client {ci}: reply zxid {} older than seen {}",
                    zx(hdr.zxid),
                    zx(last)
                ));
            }
            self.clients[ci].last_zxid = hdr.zxid;
        }
        let Some(h) = h else { return };
        self.history[h].answered_ms = Some(now);
        self.stats.ops_ok += 1;
        if hdr.err != 0 {
            self.history[h].outcome = Outcome::Err(hdr.err);
            self.check_error(h, hdr.err);
            return;
        }
        let opc = OpCode::from_i32(op).expect("known op");
        let resp = match Response::decode(opc, &mut r) {
            Ok(x) => x,
            Err(e) => self.fail(&format!("client {ci}: undecodable reply: {e}")),
        };
        let (value, mzxid) = match resp {
            Response::GetData { data, stat } => (
                data.map(|b| String::from_utf8_lossy(&b).into_owned()),
                stat.mzxid,
            ),
            Response::Stat(stat) => (None, stat.mzxid),
            _ => (None, hdr.zxid),
        };
        self.history[h].outcome = Outcome::Ok {
            zxid: hdr.zxid,
            value,
            mzxid,
        };
        self.check_answer(h);
    }

    // ---- checks ----------------------------------------------------------------------

    fn check_error(&mut self, h: usize, err: i32) {
        let op = self.history[h].clone();
        let code = ErrorCode::from_i32(err);
        let ok = match op.kind {
            HKind::Create => code == Some(ErrorCode::NodeExists),
            HKind::Set | HKind::Get => code == Some(ErrorCode::NoNode),
            HKind::Sync => false,
        };
        if code == Some(ErrorCode::SessionExpired) {
            return;
        }
        if !ok {
            self.fail(&format!(
                "client {}: {:?} {} failed with {err}",
                op.client, op.kind, op.key
            ));
        }
        if op.kind == HKind::Get {
            // Absent: the client must not have seen the key exist.
            if op.after_sync_ms.is_some() || self.clients[op.client].seen.contains_key(&op.key) {
                let known = self.clients[op.client].seen.get(&op.key).copied();
                let committed_before = op
                    .after_sync_ms
                    .and_then(|t| self.last_committed_write(&op.key, t));
                if known.is_some() || committed_before.is_some() {
                    self.fail(&format!(
                        "client {}: read {} as absent after seeing {:?} / committed before sync {:?}",
                        op.client, op.key, known.map(zx), committed_before.map(zx)
                    ));
                }
            }
        }
    }

    /// The newest committed write to `key` whose commit we learnt before `t`.
    fn last_committed_write(&self, key: &str, t: u64) -> Option<i64> {
        self.truth
            .iter()
            .rev()
            .find(|(_, tr)| {
                tr.committed_ms.is_some_and(|c| c < t)
                    && tr.write.as_ref().is_some_and(|(k, _)| k == key)
            })
            .map(|(z, _)| *z)
    }

    fn check_answer(&mut self, h: usize) {
        let op = self.history[h].clone();
        let Outcome::Ok { zxid, value, mzxid } = &op.outcome else {
            return;
        };
        let ci = op.client;
        match op.kind {
            HKind::Create | HKind::Set => {
                let t = self.truth.get(zxid).cloned();
                let Some(t) = t.filter(|t| t.committed_ms.is_some()) else {
                    self.fail(&format!(
                        "client {ci}: write acknowledged at {} which is not committed",
                        zx(*zxid)
                    ))
                };
                if t.write != Some((op.key.clone(), op.value.clone())) {
                    self.fail(&format!(
                        "client {ci}: write of {:?} to {} acknowledged at {} which holds {:?}",
                        op.value,
                        op.key,
                        zx(*zxid),
                        t.write
                    ));
                }
                let seen = self.clients[ci].seen.entry(op.key.clone()).or_insert(0);
                *seen = (*seen).max(*zxid);
            }
            HKind::Get => {
                let t = self.truth.get(mzxid).cloned();
                let Some(t) = t.filter(|t| t.committed_ms.is_some()) else {
                    self.fail(&format!(
                        "client {ci}: read {} at mzxid {} which is not committed",
                        op.key,
                        zx(*mzxid)
                    ))
                };
                if t.write != Some((op.key.clone(), value.clone())) {
                    self.fail(&format!(
                        "client {ci}: read {:?} from {} at mzxid {}, which wrote {:?}",
                        value,
                        op.key,
                        zx(*mzxid),
                        t.write
                    ));
                }
                let seen = self.clients[ci].seen.get(&op.key).copied().unwrap_or(0);
                if *mzxid < seen {
                    self.fail(&format!(
                        "client {ci}: read {} at mzxid {} older than {} it saw before",
                        op.key,
                        zx(*mzxid),
                        zx(seen)
                    ));
                }
                if let Some(ts) = op.after_sync_ms {
                    if let Some(w) = self.last_committed_write(&op.key, ts) {
                        if *mzxid < w {
                            self.fail(&format!(
                                "client {ci}: read after sync of {} at mzxid {} misses {} committed before the sync",
                                op.key, zx(*mzxid), zx(w)
                            ));
                        }
                    }
                }
                self.clients[ci]
                    .seen
                    .insert(op.key.clone(), seen.max(*mzxid));
            }
            HKind::Sync => {}
        }
    }

    /// After every event.
    fn check_step(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for sid in &touched {
            let srv = &self.servers[sid];
            let Some(l) = &srv.live else { continue };
            let r = &l.replica;
            let res =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.check_invariants()));
            if let Err(e) = res {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.fail(&format!("{sid}: check_invariants: {msg}"));
            }
            let z = r.node().last_zxid();
            if let Some(t) = self.truth.get(&z) {
                if let (Some(d), Some(_)) = (t.digest, t.committed_ms) {
                    if d != r.tree().digest() {
                        self.fail(&format!(
                            "{sid}: tree at committed {} has digest {} but the txn recorded {d}",
                            zx(z),
                            r.tree().digest()
                        ));
                    }
                }
            }
        }
    }

    fn converged(&self) -> bool {
        let mut leader = None;
        for srv in self.servers.values() {
            let Some(l) = &srv.live else { return false };
            if !l.replica.is_serving() {
                return false;
            }
            if l.replica.role() == Role::Leading {
                if leader.is_some() {
                    return false;
                }
                leader = Some(srv.sid);
            }
        }
        let Some(leader) = leader else { return false };
        let lr = &self.servers[&leader].live.as_ref().expect("up").replica;
        if !self.servers[&leader]
            .live
            .as_ref()
            .expect("up")
            .held
            .is_empty()
        {
            return false;
        }
        for srv in self.servers.values() {
            let r = &srv.live.as_ref().expect("up").replica;
            if r.leader_sid() != Some(leader)
                || r.tree().digest() != lr.tree().digest()
                || r.last_logged() != lr.last_logged()
            {
                return false;
            }
        }
        self.clients.iter().all(|c| c.pending.is_empty())
    }

    // ---- faults ----------------------------------------------------------------------

    fn fault(&mut self) {
        let w = [
            self.p.crash_weight,
            self.p.partition_weight,
            self.p.cut_weight,
            self.p.pause_weight,
        ];
        let total: u32 = w.iter().sum();
        if total == 0 {
            return;
        }
        let mut roll = self.rng.below(total as u64) as u32;
        let sids: Vec<Sid> = self.servers.keys().copied().collect();
        if roll < w[0] {
            let mut sid = sids[self.rng.below(sids.len() as u64) as usize];
            if self.rng.chance(400) {
                sid = self.current_leader().unwrap_or(sid);
            }
            let mut victims = vec![sid];
            if self.rng.chance(300) {
                // A power cut: a majority goes down at once, losing unsynced log tails.
                victims = sids.clone();
                while victims.len() > sids.len() / 2 + 1 {
                    let i = self.rng.below(victims.len() as u64) as usize;
                    victims.remove(i);
                }
            }
            for sid in victims {
                if self.is_up(sid) {
                    self.crash(sid);
                    let d = 50 + self.rng.below(3_000);
                    self.after(d, Ev::Restart(sid));
                }
            }
            return;
        }
        roll -= w[0];
        if roll < w[1] {
            // Split off a minority (or, sometimes, any subset).
            let n = sids.len();
            let k = 1 + self.rng.below((n / 2) as u64) as usize;
            let mut side = BTreeSet::new();
            // Often the leader is on the small side: the interesting case.
            if self.rng.chance(600) {
                if let Some(l) = self.current_leader() {
                    side.insert(l);
                }
            }
            while side.len() < k {
                side.insert(sids[self.rng.below(n as u64) as usize]);
            }
            let mut pairs = BTreeSet::new();
            for &a in &side {
                for &b in &sids {
                    if !side.contains(&b) {
                        pairs.insert((a, b));
                        pairs.insert((b, a));
                    }
                }
            }
            let id = self.id();
            self.stats.partitions += 1;
            self.log(format!("PARTITION {id}: {side:?} | rest"));
            self.partitions.insert(id, pairs);
            let crossing: Vec<u64> = self
                .qconns
                .iter()
                .filter(|(_, c)| !c.dead && self.blocked(c.learner, c.leader))
                .map(|(i, _)| *i)
                .collect();
            for c in crossing {
                self.qcut(c);
            }
            let d = 100 + self.rng.below(3_000);
            self.after(d, Ev::HealPartition(id));
            return;
        }
        roll -= w[1];
        if roll >= w[2] {
            let mut sid = sids[self.rng.below(sids.len() as u64) as usize];
            if self.rng.chance(500) {
                sid = self.current_leader().unwrap_or(sid);
            }
            if self.is_up(sid) && !self.paused.contains_key(&sid) {
                let d = 200 + self.rng.below(2_500);
                self.stats.pauses += 1;
                self.log(format!("PAUSE {sid} for {d} ms"));
                self.paused.insert(sid, self.now + d);
            }
            return;
        }
        // Cut one quorum or client connection.
        self.stats.cuts += 1;
        if self.rng.chance(500) {
            let mut live: Vec<u64> = self
                .qconns
                .iter()
                .filter(|(_, c)| !c.dead && c.established)
                .map(|(i, _)| *i)
                .collect();
            live.sort();
            if !live.is_empty() {
                let c = live[self.rng.below(live.len() as u64) as usize];
                self.qcut(c);
            }
        } else {
            let mut live: Vec<u64> = self
                .cconns
                .iter()
                .filter(|(_, c)| !c.dead)
                .map(|(i, _)| *i)
                .collect();
            live.sort();
            if !live.is_empty() {
                let c = live[self.rng.below(live.len() as u64) as usize];
                self.log(format!("cut client conn {c}"));
                self.ccut(c);
            }
        }
    }

    fn current_leader(&self) -> Option<Sid> {
        self.servers
            .values()
            .filter(|s| {
                s.live
                    .as_ref()
                    .is_some_and(|l| l.replica.role() == Role::Leading && l.replica.is_serving())
            })
            .map(|s| s.sid)
            .next_back()
    }

    fn heal(&mut self) {
        self.healing = true;
        self.log("HEAL".to_string());
        self.partitions.clear();
        self.paused.clear();
        self.p.election_drop_per_mille = 0;
        self.p.election_dup_per_mille = 0;
        let down: Vec<Sid> = self
            .servers
            .iter()
            .filter(|(_, s)| s.live.is_none())
            .map(|(sid, _)| *sid)
            .collect();
        for sid in down {
            self.start_server(sid);
        }
    }

    // ---- end of run ------------------------------------------------------------------

    fn final_checks(&mut self) {
        // Every live member holds the same tree, with the last committed value of each key.
        let leader = self
            .servers
            .values()
            .find(|s| {
                s.live
                    .as_ref()
                    .is_some_and(|l| l.replica.role() == Role::Leading)
            })
            .map(|s| s.sid)
            .expect("converged");
        let mut tree = self.servers[&leader]
            .live
            .as_ref()
            .expect("up")
            .replica
            .tree()
            .clone();
        for key in KEYS {
            let want = self
                .truth
                .iter()
                .rev()
                .find(|(_, t)| {
                    t.committed_ms.is_some() && t.write.as_ref().is_some_and(|(k, _)| k == key)
                })
                .map(|(z, t)| (*z, t.write.clone().expect("write").1));
            let got = tree.read(
                &Caller {
                    session_id: 0,
                    auth: &[],
                },
                &Request::GetData(PathWatch {
                    path: key.to_string(),
                    watch: false,
                }),
            );
            match (want, got) {
                (None, Err(ErrorCode::NoNode)) => {}
                (Some((z, v)), Ok(Response::GetData { data, stat })) => {
                    let data = data.map(|b| String::from_utf8_lossy(&b).into_owned());
                    if stat.mzxid != z || data != v {
                        self.fail(&format!(
                            "final {key} is {data:?} at {} but the last committed write is {v:?} at {}",
                            zx(stat.mzxid),
                            zx(z)
                        ));
                    }
                }
                (w, g) => self.fail(&format!("final {key}: want {w:?}, tree has {g:?}")),
            }
        }
        // Every committed txn is in the leader's history.
        let history: BTreeSet<i64> = self.history(leader).into_iter().collect();
        for (z, t) in self.truth.iter() {
            if t.committed_ms.is_some() && !history.contains(z) {
                self.fail(&format!("final leader {leader} lacks committed {}", zx(*z)));
            }
        }
        self.check_write_order();
    }

    /// Acknowledged writes: if one was answered before another was invoked, its zxid is
    /// lower (zxid order is the linearisation, and it must respect real time).
    fn check_write_order(&self) {
        let mut writes: Vec<(u64, u64, i64, usize)> = self
            .history
            .iter()
            .enumerate()
            .filter(|(_, h)| matches!(h.kind, HKind::Create | HKind::Set))
            .filter_map(|(i, h)| match (&h.outcome, h.answered_ms) {
                (Outcome::Ok { zxid, .. }, Some(a)) => Some((h.invoked_ms, a, *zxid, i)),
                _ => None,
            })
            .collect();
        writes.sort();
        let mut by_answer: Vec<(u64, i64, usize)> =
            writes.iter().map(|w| (w.1, w.2, w.3)).collect();
        by_answer.sort();
        let mut j = 0;
        let mut max_done: Option<(i64, usize)> = None;
        for &(inv, _, z, i) in &writes {
            while j < by_answer.len() && by_answer[j].0 < inv {
                if max_done.is_none_or(|(m, _)| by_answer[j].1 > m) {
                    max_done = Some((by_answer[j].1, by_answer[j].2));
                }
                j += 1;
            }
            if let Some((m, mi)) = max_done {
                if m > z {
                    self.fail(&format!(
                        "writes not linearizable: {:?} answered at {} before {:?} was invoked, yet {} > {}",
                        self.history[mi], m, self.history[i], zx(m), zx(z)
                    ));
                }
            }
        }
    }
}

/// Runs one seed with its parameters.
pub fn run_seed(seed: u64) -> Stats {
    let p = Params::from_seed(seed);
    let mut sim = Sim::new(seed, p);
    sim.run()
}

#[allow(dead_code)]
fn epoch_note(z: i64) -> String {
    format!("{}:{}", epoch_of(z), counter_of(z))
}
