//! A tiny deterministic simulator of an ensemble's leader elections.
//!
//! **Owns** a set of [`Election`] machines, a network of in-flight notifications delivered
//! one at a time in an order drawn from a seeded [`Rng`] (so reordered), with loss and
//! duplication, and a stand-in for what follows an election: a leader is *established* once
//! a quorum of live voters (itself included) follows it; a server whose decision does not
//! lead to an established leader within `init_limit_ticks`, or that loses its leader or its
//! quorum for `sync_limit_ticks`, goes back to LOOKING ([`Election::restart`]), as a real
//! server does when discovery or the leader's pings fail. Establishing bumps the epoch of the
//! quorum (discovery's `newEpoch = max + 1`) and tells their elections
//! ([`Election::update_election_vote`]).
//!
//! **Checks**, on every step: each machine's `check_invariants`; at every establishment, that
//! the leader's (epoch, zxid, sid) is at least that of a quorum of voters. Callers check
//! agreement with [`Sim::run_until_stable`], which returns the one leader every live server
//! follows. A failure message carries the seed and the last events.
//!
//! Pure and single-threaded: the same seed gives the same run.

use crate::election::{Action, Election, ElectionConfig};
use corral_proto::quorum::{Notification, ServerState, Sid};
use std::collections::{BTreeMap, VecDeque};

/// Events kept for failure messages.
const TRACE_EVENTS_MAX: usize = 60;

/// SplitMix64: small, seeded, good enough to shuffle deliveries.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille as u64
    }
}

/// One server of the simulated ensemble and its durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub sid: Sid,
    pub voter: bool,
    pub last_zxid: i64,
    pub current_epoch: i64,
}

impl Server {
    pub fn voter(sid: Sid, current_epoch: i64, last_zxid: i64) -> Server {
        Server {
            sid,
            voter: true,
            last_zxid,
            current_epoch,
        }
    }

    pub fn observer(sid: Sid) -> Server {
        Server {
            sid,
            voter: false,
            last_zxid: 0,
            current_epoch: 0,
        }
    }
}

/// Network faults, per delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
}

impl Faults {
    pub const NONE: Faults = Faults {
        drop_per_mille: 0,
        duplicate_per_mille: 0,
    };
}

#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub election: ElectionConfig,
    pub faults: Faults,
    /// Chance that a step is a tick rather than a delivery, while messages are in flight.
    pub tick_per_mille: u32,
    /// Ticks a decided server waits for its leader to be established.
    pub init_limit_ticks: u32,
    /// Ticks an established server tolerates a lost leader or quorum.
    pub sync_limit_ticks: u32,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            election: ElectionConfig {
                finalize_wait_ticks: 4,
                notification_interval_min_ticks: 4,
                notification_interval_max_ticks: 64,
            },
            faults: Faults::NONE,
            tick_per_mille: 100,
            init_limit_ticks: 60,
            sync_limit_ticks: 20,
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    server: Server,
    election: Option<Election>,
    /// Ticks the current decision has been without an established leader (or quorum).
    unhappy_ticks: u32,
    /// The current decision has been established at least once.
    ever_happy: bool,
    /// Leading and established.
    established: bool,
}

/// A leader established during the run, with what every voter held when it happened.
#[derive(Debug, Clone)]
pub struct Establishment {
    pub tick: u64,
    pub leader: Sid,
    pub new_epoch: i64,
    /// (current epoch, last zxid) of every voter just before.
    pub basis: BTreeMap<Sid, (i64, i64)>,
}

#[derive(Debug, Clone)]
pub struct Sim {
    seed: u64,
    rng: Rng,
    cfg: SimConfig,
    nodes: BTreeMap<Sid, Node>,
    voters: Vec<Sid>,
    observers: Vec<Sid>,
    in_flight: Vec<(Sid, Sid, Notification)>,
    now: u64,
    steps: u64,
    trace: VecDeque<String>,
    pub establishments: Vec<Establishment>,
    /// Messages handed to a live server.
    pub delivered: u64,
}

impl Sim {
    pub fn new(seed: u64, servers: &[Server], cfg: SimConfig) -> Sim {
        let voters = servers.iter().filter(|s| s.voter).map(|s| s.sid).collect();
        let observers = servers.iter().filter(|s| !s.voter).map(|s| s.sid).collect();
        let nodes = servers
            .iter()
            .map(|s| {
                (
                    s.sid,
                    Node {
                        server: *s,
                        election: None,
                        unhappy_ticks: 0,
                        ever_happy: false,
                        established: false,
                    },
                )
            })
            .collect();
        Sim {
            seed,
            rng: Rng::new(seed),
            cfg,
            nodes,
            voters,
            observers,
            in_flight: Vec::new(),
            now: 0,
            steps: 0,
            trace: VecDeque::new(),
            establishments: Vec::new(),
            delivered: 0,
        }
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    fn log(&mut self, event: String) {
        if self.trace.len() == TRACE_EVENTS_MAX {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("t{} {event}", self.now));
    }

    /// A failure message: seed, what each server is, and the last events.
    pub fn report(&self, what: &str) -> String {
        let mut s = format!("seed {}: {what}\n", self.seed);
        for (sid, n) in &self.nodes {
            s += &format!("  {sid}: {:?}", n.server);
            match &n.election {
                None => s += " down\n",
                Some(e) => {
                    s += &format!(
                        " {:?} round {} proposal {:?} vote {:?}\n",
                        e.state(),
                        e.logical_clock(),
                        e.proposal(),
                        e.current_vote()
                    )
                }
            }
        }
        for e in &self.trace {
            s += &format!("  {e}\n");
        }
        s
    }

    /// Starts (or restarts after [`Sim::crash`]) server `sid` as a fresh process.
    pub fn start(&mut self, sid: Sid) {
        let node = self.nodes.get_mut(&sid).expect("known sid");
        assert!(node.election.is_none(), "{sid} already running");
        let s = node.server;
        let mut e = Election::new(
            sid,
            self.voters.iter().copied(),
            self.observers.iter().copied(),
            s.last_zxid,
            s.current_epoch,
        )
        .with_config(self.cfg.election);
        let actions = e.start();
        node.election = Some(e);
        node.unhappy_ticks = 0;
        node.ever_happy = false;
        node.established = false;
        self.log(format!("start {sid}"));
        self.apply(sid, actions);
    }

    pub fn start_all(&mut self) {
        let sids: Vec<Sid> = self.nodes.keys().copied().collect();
        for sid in sids {
            self.start(sid);
        }
    }

    pub fn crash(&mut self, sid: Sid) {
        let node = self.nodes.get_mut(&sid).expect("known sid");
        node.election = None;
        node.established = false;
        self.log(format!("crash {sid}"));
    }

    pub fn is_up(&self, sid: Sid) -> bool {
        self.nodes.get(&sid).is_some_and(|n| n.election.is_some())
    }

    pub fn server(&self, sid: Sid) -> Server {
        self.nodes[&sid].server
    }

    pub fn election(&self, sid: Sid) -> Option<&Election> {
        self.nodes.get(&sid).and_then(|n| n.election.as_ref())
    }

    /// (leader, state) of a decided live server.
    pub fn decision(&self, sid: Sid) -> Option<(Sid, ServerState)> {
        let e = self.election(sid)?;
        (e.state() != ServerState::Looking).then(|| (e.current_vote().leader, e.state()))
    }

    /// Injects a notification as if `from` had sent it to `to`.
    pub fn inject(&mut self, from: Sid, to: Sid, n: Notification) {
        self.in_flight.push((from, to, n));
    }

    fn apply(&mut self, from: Sid, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, notification } => self.in_flight.push((from, to, notification)),
                Action::Broadcast(n) => {
                    for &v in &self.voters {
                        if v != from {
                            self.in_flight.push((from, v, n.clone()));
                        }
                    }
                }
                Action::Decided { leader, state } => {
                    self.log(format!("{from} decided {state:?} leader {leader}"));
                    let node = self.nodes.get_mut(&from).expect("known sid");
                    node.unhappy_ticks = 0;
                    node.ever_happy = false;
                    node.established = false;
                }
            }
        }
    }

    /// One random event: a tick of every live server, or one delivery.
    pub fn step(&mut self) {
        self.steps += 1;
        if self.in_flight.is_empty() || self.rng.chance(self.cfg.tick_per_mille) {
            self.tick();
        } else {
            self.deliver();
        }
        for n in self.nodes.values() {
            if let Some(e) = &n.election {
                e.check_invariants();
            }
        }
    }

    fn deliver(&mut self) {
        let i = self.rng.below(self.in_flight.len() as u64) as usize;
        let (from, to, n) = self.in_flight.swap_remove(i);
        if self.rng.chance(self.cfg.faults.drop_per_mille) {
            return;
        }
        if self.rng.chance(self.cfg.faults.duplicate_per_mille) {
            self.in_flight.push((from, to, n.clone()));
        }
        let Some(e) = self.nodes.get_mut(&to).and_then(|n| n.election.as_mut()) else {
            return;
        };
        self.delivered += 1;
        let actions = e.step(from, n);
        self.apply(to, actions);
    }

    fn tick(&mut self) {
        self.now += 1;
        let sids: Vec<Sid> = self.nodes.keys().copied().collect();
        for &sid in &sids {
            if let Some(e) = self.nodes.get_mut(&sid).and_then(|n| n.election.as_mut()) {
                let actions = e.tick();
                self.apply(sid, actions);
            }
        }
        for &sid in &sids {
            self.after_election(sid);
        }
    }

    /// Live voters following `leader` (the leader included if it leads).
    fn followers_of(&self, leader: Sid) -> Vec<Sid> {
        self.voters
            .iter()
            .copied()
            .filter(|&v| {
                matches!(self.decision(v), Some((l, ServerState::Following | ServerState::Leading)) if l == leader)
            })
            .collect()
    }

    /// The stand-in for discovery and the leader's pings.
    fn after_election(&mut self, sid: Sid) {
        let Some((leader, state)) = self.decision(sid) else {
            return;
        };
        let quorum = self.voters.len() / 2 + 1;
        let happy = if state == ServerState::Leading {
            let group = self.followers_of(sid);
            if group.len() >= quorum && !self.nodes[&sid].established {
                self.establish(sid, &group);
            }
            group.len() >= quorum
        } else {
            let leading = self.decision(leader) == Some((leader, ServerState::Leading))
                && self.nodes[&leader].established;
            if leading && !self.nodes[&sid].ever_happy {
                // Synced with the leader: now in its epoch.
                let epoch = self.nodes[&leader].server.current_epoch;
                let node = self.nodes.get_mut(&sid).expect("known sid");
                if node.server.voter {
                    node.server.current_epoch = epoch;
                }
                if let Some(e) = node.election.as_mut() {
                    e.update_election_vote(epoch);
                }
            }
            leading
        };
        let node = self.nodes.get_mut(&sid).expect("known sid");
        if happy {
            node.unhappy_ticks = 0;
            node.ever_happy = true;
            return;
        }
        node.unhappy_ticks += 1;
        let limit = if node.ever_happy {
            self.cfg.sync_limit_ticks
        } else {
            self.cfg.init_limit_ticks
        };
        if node.unhappy_ticks > limit {
            node.established = false;
            let s = node.server;
            let actions = node
                .election
                .as_mut()
                .expect("decided implies up")
                .restart(s.last_zxid, s.current_epoch);
            self.log(format!("{sid} back to LOOKING"));
            self.apply(sid, actions);
        }
    }

    fn establish(&mut self, leader: Sid, group: &[Sid]) {
        let basis: BTreeMap<Sid, (i64, i64)> = self
            .voters
            .iter()
            .map(|v| {
                let s = self.nodes[v].server;
                (*v, (s.current_epoch, s.last_zxid))
            })
            .collect();
        let quorum = self.voters.len() / 2 + 1;
        let (le, lz) = basis[&leader];
        let below = basis
            .iter()
            .filter(|(v, (e, z))| (*e, *z, **v) <= (le, lz, leader))
            .count();
        assert!(
            below >= quorum,
            "{}",
            self.report(&format!(
                "leader {leader} {:?} is not the best of any quorum",
                (le, lz)
            ))
        );
        let new_epoch = group
            .iter()
            .map(|v| self.nodes[v].server.current_epoch)
            .max()
            .unwrap_or(0)
            + 1;
        for v in group {
            let node = self.nodes.get_mut(v).expect("known sid");
            node.server.current_epoch = new_epoch;
            if let Some(e) = node.election.as_mut() {
                e.update_election_vote(new_epoch);
            }
        }
        self.nodes.get_mut(&leader).expect("known sid").established = true;
        self.log(format!(
            "{leader} established, epoch {new_epoch}, group {group:?}"
        ));
        self.establishments.push(Establishment {
            tick: self.now,
            leader,
            new_epoch,
            basis,
        });
    }

    /// The leader every live server follows, once there is one: an established leader, all
    /// live voters following it and all live observers observing it.
    pub fn stable_leader(&self) -> Option<Sid> {
        let leader = self
            .nodes
            .iter()
            .find(|(_, n)| n.established && n.election.is_some())
            .map(|(sid, _)| *sid)?;
        for (sid, n) in &self.nodes {
            if n.election.is_none() {
                continue;
            }
            let want = if *sid == leader {
                ServerState::Leading
            } else if n.server.voter {
                ServerState::Following
            } else {
                ServerState::Observing
            };
            if self.decision(*sid) != Some((leader, want)) {
                return None;
            }
            if *sid != leader && !n.ever_happy {
                return None;
            }
        }
        Some(leader)
    }

    /// Steps until [`Sim::stable_leader`] answers, at most `max_steps` steps.
    pub fn run_until_stable(&mut self, max_steps: u64) -> Result<Sid, String> {
        for _ in 0..max_steps {
            self.step();
            if let Some(l) = self.stable_leader() {
                return Ok(l);
            }
        }
        Err(self.report(&format!("no stable leader after {max_steps} steps")))
    }

    /// Steps `n` times whatever happens.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }
}
