//! ZooKeeper's client wire protocol and transaction records, as pure data and codecs.
//!
//! Owns: the jute encoding ([`jute`]), framing ([`frame`]), shared records and headers
//! ([`records`]), request and response bodies ([`request`], [`response`]), opcodes and
//! special xids ([`opcode`]), error codes ([`error`]), watch event numbers ([`event`]) and
//! txn records ([`txn`]). Byte layouts follow `zookeeper.jute` as described in
//! `shared/reference/zookeeper-protocol.md`; golden tests pin them to bytes captured from a
//! real ZooKeeper 3.8.0.
//!
//! No I/O, no clock, no randomness. Decoding arbitrary bytes never panics.

pub mod error;
pub mod event;
pub mod frame;
pub mod jute;
pub mod opcode;
pub mod quorum;
pub mod records;
pub mod request;
pub mod response;
pub mod txn;

pub use error::ErrorCode;
pub use event::{AddWatchMode, EventType, KeeperState, WatcherType};
pub use jute::{DecodeError, Reader, Record, Writer};
pub use opcode::OpCode;
pub use records::{
    perms, Acl, ClientInfo, ConnectRequest, ConnectResponse, Id, MultiHeader, ReplyHeader,
    RequestHeader, Stat, StatPersisted, WatcherEvent,
};
pub use request::{Request, RequestError};
pub use response::{MultiResult, Response};
pub use txn::{CreateTxn, Txn, TxnDigest, TxnEntry, TxnHeader};
