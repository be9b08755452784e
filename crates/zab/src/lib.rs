//! Zab, ZooKeeper's atomic broadcast, as pure state machines.
//!
//! Owns: fast leader election ([`election`]), and what follows it: the leader's discovery,
//! synchronisation (DIFF, TRUNC, SNAP) and broadcast ([`leader`]) and the learner's side of
//! the same conversation ([`learner`]). Each machine is driven by `step(msg)`
//! and `tick()` and returns what to do as data ([`election::Action`]); wire formats live in
//! `corral_proto::quorum`. [`sim`] runs many machines from a seed, delivering messages in
//! random order with loss and duplication, for scenario and property tests.
//!
//! No I/O, no clock, no unseeded randomness (checked by `crates/node/tests/tidy.rs`).
//! Threading: none; callers serialise access to each machine.

pub mod election;
pub mod leader;
pub mod learner;
pub mod sim;

pub use election::{Action, Election, ElectionConfig, Vote};
