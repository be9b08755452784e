//! The corral server shell: configuration, listeners, the core task that owns the pure
//! node, connection tasks, four-letter words and statistics. No protocol decisions are made
//! here; they live in `corral-node` and `corral-tree`.

pub mod config;
pub mod conn;
pub mod core;
pub mod durable;
pub mod election_net;
pub mod ensemble;
pub mod fourlw;
pub mod gate;
pub mod quorum_net;
pub mod run;
pub mod settings;
pub mod stats;
pub mod txn_log_sync;
