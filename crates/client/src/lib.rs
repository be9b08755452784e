//! corral-client: an async tokio client for ZooKeeper-compatible servers (corral, Apache
//! ZooKeeper 3.5+).
//!
//! Shape: a sans-IO session core ([`core`]: xids, in-flight FIFO, watch registry, session
//! state machine) driven by one tokio task (`driver`: socket, timers, host rotation), and
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
//!
//! Events reach the application two ways: each watch has its own handle ([`WatchFuture`],
//! [`WatchStream`]), and [`ClientOptions::start_with_events`] /
//! [`ClientOptions::connect_with_events`] also give an [`EventStream`], the Java client's
//! default watcher: every server notification once (however many watches it matched), every
//! session state change, watch removals and failed connection attempts, in arrival order. A
//! handle can be [detached](WatchFuture::detach) to leave its watch armed for the stream
//! alone.
//!
//! Java's client-side rules are kept where a tool may depend on them: path validation with
//! Java's messages ([`connect_string::check_path`]), null data and null credentials
//! ([`Client::create_opt`], [`Client::get_data_opt_w`], [`Client::add_auth_opt`]), the
//! create opcodes (create without a stat, create2 with one), removeWatches settled against
//! the local watch table ([`Client::remove_watches`]), and, as an option, failing requests
//! queued while disconnected when a connection attempt fails
//! ([`ClientOptions::fail_queued_on_connect_failure`]).
//!
//! Not implemented: SASL/Kerberos auth (digest and other packet schemes work through
//! [`Client::add_auth`]), probing for a read-write server while connected to a read-only one
//! (the client accepts read-only servers with [`ClientOptions::can_be_read_only`] and stays
//! until the connection drops), and client-side expiry while no server is reachable (as in
//! the Java client, only a server can declare the session expired).
//!
//! # Testing
//!
//! The integration tests (here and in `corral-recipes`) start a real server process through
//! [`testing::TestServer`] (feature `testing`). `CORRAL_TEST_TARGET=zookeeper` (the default)
//! runs Apache ZooKeeper 3.8 from Debian's `zookeeper` package;
//! `CORRAL_TEST_TARGET=corral` runs `target/release/corral server --config <zoo.cfg>` (or
//! `$CORRAL_BIN`). A missing server is a test failure with the install hint, never a skip.

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
    acls, CreateMode, Op, OpResult, ReadOp, ReadResult, SessionEvent, SessionInfo, SessionState,
    WatchedEvent,
};
pub use watch::{EventStream, WatchFuture, WatchStream};

/// The wire protocol crate, for [`Client::raw_request`].
pub use corral_proto as proto;
pub use corral_proto::{
    perms, Acl, AddWatchMode, ClientInfo, EventType, Id, KeeperState, Stat, WatcherType,
};
