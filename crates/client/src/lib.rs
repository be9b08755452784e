//! corral-client: an async tokio client for ZooKeeper-compatible servers (corral, Apache
//! ZooKeeper 3.5+).
//!
//! Shape: a sans-IO session core ([`core`]: xids, in-flight FIFO, watch registry, session
//! state machine) driven by one tokio task ([`driver`]: socket, timers, host rotation), and
//! cheap [`Client`] handles that talk to the task over channels ([`client`]).
//!
//! ```no_run
//! # async fn demo() -> corral_client::Result<()> {
//! use corral_client::{acls, Client, CreateMode};
//! let zk = Client::connect("127.0.0.1:2181,127.0.0.1:2182/app").await?;
//! zk.create("/config", b"v1", &acls::open(), CreateMode::Persistent).await?;
//! let (data, stat, changed) = zk.get_data_w("/config").await?;
//! zk.set_data("/config", b"v2", stat.version).await?;
//! let event = changed.await; // NodeDataChanged on "/config"
//! # let _ = (data, event);
//! zk.close().await
//! # }
//! ```
//!
//! Guarantees kept from ZooKeeper's Java client: replies arrive in request order; a watch
//! event is delivered before the reply of any request sent after the change; after a
//! reconnect to another server on the same session every live watch is re-armed with
//! setWatches/setWatches2 (so changes made while disconnected fire on arrival); on expiry
//! every watch gets a final event with state Expired.

pub mod client;
pub mod connect_string;
pub mod core;
pub(crate) mod driver;
pub mod error;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod watch;

pub use client::{Client, ClientOptions, ANY_VERSION, CONFIG_NODE};
pub use connect_string::{Chroot, ConnectString};
pub use core::WatchCounts;
pub use error::{Error, Result};
pub use types::{
    acls, CreateMode, Op, OpResult, ReadOp, ReadResult, SessionInfo, SessionState, WatchedEvent,
};
pub use watch::{WatchFuture, WatchStream};

/// The wire protocol crate, for [`Client::raw_request`].
pub use corral_proto as proto;
pub use corral_proto::{
    perms, Acl, AddWatchMode, ClientInfo, EventType, Id, KeeperState, Stat, WatcherType,
};
