//! The simulated network: ordered, reliable streams that can be cut (quorum and client
//! connections), and the election channel's loose datagrams.
//!
//! A stream direction is a FIFO whose messages are each given a delivery time no earlier
//! than the previous one's, so order is kept whatever the random delays; the event queue
//! holds one event per message, which pops the front of that direction.

use bytes::Bytes;
use corral_proto::quorum::{QuorumPacket, Sid};
use corral_proto::{ConnectRequest, Request};
use std::collections::VecDeque;

/// What travels on a quorum connection.
#[derive(Debug, Clone)]
pub enum QMsg {
    Packet(QuorumPacket),
    /// SNAP's body: the serialised stream that follows the SNAP packet.
    Snap {
        zxid: i64,
        bytes: Vec<u8>,
        /// Simulator bookkeeping: the zxids of the leader's history the snapshot holds.
        cover: Vec<i64>,
    },
    /// The sender closed its end.
    Eof,
}

/// One learner → leader connection. Its id is also the leader's [`PeerId`].
#[derive(Debug)]
pub struct QConn {
    pub learner: Sid,
    pub leader: Sid,
    pub learner_inc: u64,
    pub leader_inc: u64,
    pub established: bool,
    /// Either end gone: nothing more is delivered.
    pub dead: bool,
    pub to_leader: VecDeque<QMsg>,
    pub to_learner: VecDeque<QMsg>,
    pub last_to_leader: u64,
    pub last_to_learner: u64,
    pub learner_closed: bool,
    pub leader_closed: bool,
    pub connect_tries: u32,
}

/// Client → server.
#[derive(Debug, Clone)]
pub enum CMsg {
    Connect(ConnectRequest),
    Req { xid: i32, op: i32, req: Request },
    Eof,
}

/// Server → client.
#[derive(Debug, Clone)]
pub enum SMsg {
    Frame(Bytes),
    Eof,
}

#[derive(Debug)]
pub struct CConn {
    pub client: usize,
    pub server: Sid,
    pub server_inc: u64,
    pub dead: bool,
    pub to_server: VecDeque<CMsg>,
    pub to_client: VecDeque<SMsg>,
    pub last_to_server: u64,
    pub last_to_client: u64,
    pub server_closed: bool,
    pub client_closed: bool,
}
