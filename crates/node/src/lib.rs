//! One corral replica as a pure state machine: the data tree, sessions and the request
//! pipeline, driven by inputs and returning outputs as data. No tokio, no clock, no
//! randomness: the server crate runs it over real sockets, and a simulator can run many
//! from a seed.

pub mod auth;
pub mod learner;
pub mod node;
pub mod replica;
pub mod session;

pub use node::{frame, ConnId, Mode, Node, NodeConfig, NodeCounters, Now, Output};
