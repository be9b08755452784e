//! Quorum wire formats: the election port (connection header, framed FastLeaderElection
//! notifications) and the quorum port (bare jute `QuorumPacket`s with typed payloads).
//!
//! Owns the byte layouts only; what the messages mean belongs to `corral-zab`. Golden tests
//! (`tests/quorum_golden.rs`) decode and re-encode, byte for byte, every frame captured from a
//! real 3.8.0 ensemble (`tests/fixtures/quorum/`).
//!
//! Grammar (big-endian, two's complement; `buffer`/`vector` as in [`crate::jute`]):
//!
//! ```text
//! ; election port, initiator -> acceptor, once per connection
//! header        = legacy-header / versioned-header
//! legacy-header = long sid                      ; sid >= 0 (before 3.5): nothing follows
//! versioned-header = long protocolVersion       ; -65536 (one address) or -65535 (multi-address)
//!                    long sid                   ; Long.MAX_VALUE = observer without an id
//!                    int  len                   ; 1..=2048
//!                    len * u8                   ; "host:port", multi-address "h1:p1|h2:p2"
//! ; election port, both directions, after the header
//! frame         = int len, len * u8             ; 1..=524288
//! notification  = int state                     ; 0 LOOKING 1 FOLLOWING 2 LEADING 3 OBSERVING
//!                 long leader, long zxid        ; proposed leader and its last zxid
//!                 long electionEpoch            ; sender's logical clock (round)
//!                 [ long peerEpoch              ; proposed leader's epoch; absent in 28-byte form
//!                   [ int version               ; absent in 40-byte form (4 ignored bytes there)
//!                     [ int configLength, configLength * u8 ] ]  ; only when version > 1
//!                 ] *u8                         ; anything after is ignored, as Java does
//! ; quorum port: records back to back, no length prefix
//! QuorumPacket  = int type, long zxid, buffer data, vector<Id> authinfo
//! ```
//!
//! Decoding is two-phase, as in [`crate::frame`]: a `check` says whether a whole item is in
//! the buffer ([`Check::Incomplete`] is not an error) and how long it is; then the item is
//! parsed from exactly those bytes. A bare `QuorumPacket` has no length prefix, so its check
//! walks the record and reports the bytes it spans. Invariants: no decoder panics or
//! allocates beyond the bytes it was given; every accepted form re-encodes to the same bytes
//! (legacy notification forms included). After a `SNAP` packet the leader streams a snapshot
//! that is not a `QuorumPacket`; the caller knows that and must not feed it here.

use crate::jute::{DecodeError, DecodeResult, Reader, Record, Writer};
use crate::records::Id;
use bytes::Bytes;

/// A server id (`myid`); Java's `long`.
pub type Sid = i64;

/// Election header `protocolVersion` of 3.5+: one `host:port`.
pub const ELECTION_PROTOCOL_VERSION_V1: i64 = -65536;
/// Election header `protocolVersion` with multi-address enabled: `h1:p1|h2:p2`.
pub const ELECTION_PROTOCOL_VERSION_V2: i64 = -65535;
/// Largest address field of an election header, in bytes (`QuorumCnxManager.maxBuffer`).
pub const ELECTION_HEADER_ADDRESS_BYTES_MAX: usize = 2048;
/// Largest election message payload, in bytes (`QuorumCnxManager.PACKETMAXSIZE`).
pub const ELECTION_MESSAGE_BYTES_MAX: usize = 512 * 1024;
/// The sid an observer without an id presents (`QuorumPeer.OBSERVER_ID`).
pub const OBSERVER_ID: Sid = i64::MAX;

/// Notification format version that carries the quorum config (3.5+).
pub const NOTIFICATION_VERSION: i32 = 0x2;
/// Notification bytes before ZOOKEEPER-107: no peerEpoch, no version.
pub const NOTIFICATION_LEGACY28_BYTES: usize = 28;
/// Notification bytes of 3.4 before 3.4.6: peerEpoch then 4 bytes Java ignores.
pub const NOTIFICATION_LEGACY40_BYTES: usize = 40;
/// Fixed part of a current notification, in bytes, before the config text.
pub const NOTIFICATION_FIXED_BYTES: usize = 44;

/// `protocolVersion` in LearnerInfo and LEADERINFO since 3.4 (`0x10000`).
pub const QUORUM_PROTOCOL_VERSION: i32 = 0x10000;
/// Largest `data` or `Id` string of a quorum packet by default, in bytes: `jute.maxbuffer`
/// (0xfffff) plus `jute.maxbuffer.extrasize` (defaults to the same), as Java's reader checks.
pub const QUORUM_BUFFER_BYTES_MAX_DEFAULT: usize = 2 * 0xfffff;
/// Most `authinfo` ids in one quorum packet. Java reads any count; a client's auth list is a
/// handful of ids, so a larger count is treated as garbage rather than buffered.
pub const QUORUM_PACKET_AUTHINFO_IDS_MAX: usize = 1024;
/// The ustring a leader writes after the snapshot that follows SNAP.
pub const SNAPSHOT_SIGNATURE: &str = "BenWasHere";
/// ACKEPOCH's epoch when the learner had already accepted the proposed epoch.
pub const ACK_EPOCH_ALREADY_ACCEPTED: i32 = -1;

/// `zxid = epoch << 32 | counter`.
pub fn make_zxid(epoch: i64, counter: i64) -> i64 {
    (epoch << 32) | (counter & 0xffff_ffff)
}

/// The epoch of a zxid (Java's arithmetic `zxid >> 32`).
pub fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

/// The counter of a zxid (its low 32 bits).
pub fn counter_of(zxid: i64) -> i64 {
    zxid & 0xffff_ffff
}

/// Outcome of looking at the front of a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// More bytes are needed before anything can be said.
    Incomplete,
    /// A whole item spans `buf[..len]`.
    Complete { len: usize },
}

/// A read-only cursor for the check phase: running out of bytes means "incomplete".
struct Peek<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Peek<'a> {
    fn i32(&mut self) -> Option<i32> {
        let b = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Option<i64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }

    /// Skips `n` bytes; `None` if they are not all here yet.
    fn skip(&mut self, n: usize) -> Option<()> {
        if self.buf.len() - self.pos < n {
            return None;
        }
        self.pos += n;
        Some(())
    }

    /// A jute buffer/ustring: `int len` (-1 = null) then the bytes, at most `max` of them.
    fn buffer(&mut self, what: &'static str, max: usize) -> Result<Option<()>, DecodeError> {
        let offset = self.pos;
        let Some(len) = self.i32() else {
            return Ok(None);
        };
        if len == -1 {
            return Ok(Some(()));
        }
        if len < 0 || len as usize > max {
            return Err(DecodeError::BadLength {
                what,
                len: len as i64,
                offset,
            });
        }
        Ok(self.skip(len as usize))
    }
}

// ---------------------------------------------------------------------------------------
// Election port
// ---------------------------------------------------------------------------------------

/// The first bytes an election-port initiator writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionHeader {
    /// Before 3.5: the first long is the sid itself (>= 0) and nothing follows.
    Legacy { sid: Sid },
    /// 3.5+: `protocolVersion` ([`ELECTION_PROTOCOL_VERSION_V1`] or `_V2`), sid and the
    /// initiator's election address(es), kept as sent. The acceptor dials back to these
    /// addresses when it refuses the connection (it has the larger sid).
    Versioned {
        protocol_version: i64,
        sid: Sid,
        addresses: Bytes,
    },
}

impl ElectionHeader {
    /// The current header (protocol version 1) for `sid` reachable at `address` (`host:port`).
    pub fn new(sid: Sid, address: &str) -> ElectionHeader {
        ElectionHeader::Versioned {
            protocol_version: ELECTION_PROTOCOL_VERSION_V1,
            sid,
            addresses: Bytes::copy_from_slice(address.as_bytes()),
        }
    }

    pub fn sid(&self) -> Sid {
        match self {
            ElectionHeader::Legacy { sid } | ElectionHeader::Versioned { sid, .. } => *sid,
        }
    }

    /// The `host:port` entries of a versioned header (split on `|`), empty for a legacy one.
    /// Java closes the connection when one does not parse as `host:port`; that check belongs
    /// to whoever resolves them.
    pub fn address_list(&self) -> Vec<String> {
        match self {
            ElectionHeader::Legacy { .. } => Vec::new(),
            ElectionHeader::Versioned { addresses, .. } => String::from_utf8_lossy(addresses)
                .split('|')
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Phase one: is a whole header at the front of `buf`?
    pub fn check(buf: &[u8]) -> Result<Check, DecodeError> {
        let mut p = Peek { buf, pos: 0 };
        let Some(first) = p.i64() else {
            return Ok(Check::Incomplete);
        };
        if first >= 0 {
            return Ok(Check::Complete { len: 8 });
        }
        if first != ELECTION_PROTOCOL_VERSION_V1 && first != ELECTION_PROTOCOL_VERSION_V2 {
            return Err(DecodeError::Invalid {
                what: "ElectionHeader.protocolVersion",
                value: first,
            });
        }
        if p.i64().is_none() {
            return Ok(Check::Incomplete);
        }
        let Some(len) = p.i32() else {
            return Ok(Check::Incomplete);
        };
        if len <= 0 || len as usize > ELECTION_HEADER_ADDRESS_BYTES_MAX {
            return Err(DecodeError::BadLength {
                what: "ElectionHeader.address",
                len: len as i64,
                offset: 16,
            });
        }
        match p.skip(len as usize) {
            None => Ok(Check::Incomplete),
            Some(()) => Ok(Check::Complete { len: p.pos }),
        }
    }

    /// Phase two: parses one whole header (as delimited by [`ElectionHeader::check`]).
    pub fn parse(item: &[u8]) -> DecodeResult<ElectionHeader> {
        let mut r = Reader::from_slice(item);
        let first = r.read_i64("ElectionHeader.protocolVersion")?;
        let header = if first >= 0 {
            ElectionHeader::Legacy { sid: first }
        } else {
            let sid = r.read_i64("ElectionHeader.sid")?;
            let addresses = r.read_buffer("ElectionHeader.address")?.unwrap_or_default();
            if addresses.is_empty() || addresses.len() > ELECTION_HEADER_ADDRESS_BYTES_MAX {
                return Err(DecodeError::BadLength {
                    what: "ElectionHeader.address",
                    len: addresses.len() as i64,
                    offset: 16,
                });
            }
            if first != ELECTION_PROTOCOL_VERSION_V1 && first != ELECTION_PROTOCOL_VERSION_V2 {
                return Err(DecodeError::Invalid {
                    what: "ElectionHeader.protocolVersion",
                    value: first,
                });
            }
            ElectionHeader::Versioned {
                protocol_version: first,
                sid,
                addresses,
            }
        };
        expect_consumed(&r, "ElectionHeader")?;
        Ok(header)
    }

    /// Both phases: `Ok(None)` while incomplete, else the header and the bytes it spans.
    pub fn decode(buf: &[u8]) -> Result<Option<(ElectionHeader, usize)>, DecodeError> {
        match ElectionHeader::check(buf)? {
            Check::Incomplete => Ok(None),
            Check::Complete { len } => Ok(Some((ElectionHeader::parse(&buf[..len])?, len))),
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        match self {
            ElectionHeader::Legacy { sid } => w.write_i64(*sid),
            ElectionHeader::Versioned {
                protocol_version,
                sid,
                addresses,
            } => {
                w.write_i64(*protocol_version);
                w.write_i64(*sid);
                w.write_buffer(Some(addresses));
            }
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }
}

fn expect_consumed(r: &Reader, what: &'static str) -> DecodeResult<()> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Invalid {
            what,
            value: r.remaining() as i64,
        })
    }
}

/// Phase one for an election message: `int len` (1..=[`ELECTION_MESSAGE_BYTES_MAX`]) then
/// the payload. `Complete { len }` counts the 4-byte prefix; the payload is `buf[4..len]`.
pub fn check_election_frame(buf: &[u8]) -> Result<Check, DecodeError> {
    let mut p = Peek { buf, pos: 0 };
    let Some(len) = p.i32() else {
        return Ok(Check::Incomplete);
    };
    if len <= 0 || len as usize > ELECTION_MESSAGE_BYTES_MAX {
        return Err(DecodeError::BadLength {
            what: "election frame",
            len: len as i64,
            offset: 0,
        });
    }
    match p.skip(len as usize) {
        None => Ok(Check::Incomplete),
        Some(()) => Ok(Check::Complete { len: p.pos }),
    }
}

/// Writes `payload` as one election message (`int len` + payload).
pub fn write_election_frame(w: &mut Writer, payload: &[u8]) {
    debug_assert!(!payload.is_empty() && payload.len() <= ELECTION_MESSAGE_BYTES_MAX);
    w.write_i32(payload.len() as i32);
    w.write_raw(payload);
}

/// A server's state as election notifications carry it (`QuorumPeer.ServerState` ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerState {
    Looking,
    Following,
    Leading,
    Observing,
}

impl ServerState {
    pub fn code(self) -> i32 {
        match self {
            ServerState::Looking => 0,
            ServerState::Following => 1,
            ServerState::Leading => 2,
            ServerState::Observing => 3,
        }
    }

    pub fn from_code(code: i32) -> Option<ServerState> {
        match code {
            0 => Some(ServerState::Looking),
            1 => Some(ServerState::Following),
            2 => Some(ServerState::Leading),
            3 => Some(ServerState::Observing),
            _ => None,
        }
    }
}

/// Which of the notification layouts Java accepts a message used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationLayout {
    /// Exactly 28 bytes: no peerEpoch (it is the epoch of `zxid`), no version.
    Legacy28,
    /// Exactly 40 bytes: peerEpoch, then 4 bytes Java does not read (3.4 padded its
    /// 36-byte message to 40; 3.4.6+ test code puts version 1 there).
    Legacy40 { ignored: [u8; 4] },
    /// Anything else: peerEpoch and `version`; the config follows when `version > 1`.
    Versioned { version: i32 },
}

/// A FastLeaderElection notification (the payload of one election message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub state: ServerState,
    /// Proposed leader; an observer's own vote is `i64::MIN`.
    pub leader: Sid,
    /// Proposed leader's last logged zxid.
    pub zxid: i64,
    /// The sender's logical clock (election round).
    pub election_epoch: i64,
    /// Proposed leader's current epoch.
    pub peer_epoch: i64,
    pub layout: NotificationLayout,
    /// The sender's quorum config text (`server.N=…` lines and `version=…`); present
    /// exactly when the layout is `Versioned` with a version above 1.
    pub config: Option<Bytes>,
    /// Bytes after the parsed fields, which Java ignores (empty in anything Java sends).
    pub trailing: Bytes,
}

impl Notification {
    /// A notification in the current format (version 2, with `config`).
    pub fn new(
        state: ServerState,
        leader: Sid,
        zxid: i64,
        election_epoch: i64,
        peer_epoch: i64,
        config: Bytes,
    ) -> Notification {
        Notification {
            state,
            leader,
            zxid,
            election_epoch,
            peer_epoch,
            layout: NotificationLayout::Versioned {
                version: NOTIFICATION_VERSION,
            },
            config: Some(config),
            trailing: Bytes::new(),
        }
    }

    /// The format version Java records for it (0 for the legacy layouts).
    pub fn version(&self) -> i32 {
        match self.layout {
            NotificationLayout::Versioned { version } => version,
            _ => 0,
        }
    }

    /// Parses one payload (the bytes inside an election frame).
    pub fn decode(payload: &[u8]) -> DecodeResult<Notification> {
        let total = payload.len();
        if total < NOTIFICATION_LEGACY28_BYTES {
            return Err(DecodeError::BadLength {
                what: "Notification",
                len: total as i64,
                offset: 0,
            });
        }
        let mut r = Reader::from_slice(payload);
        let state_code = r.read_i32("Notification.state")?;
        let leader = r.read_i64("Notification.leader")?;
        let zxid = r.read_i64("Notification.zxid")?;
        let election_epoch = r.read_i64("Notification.electionEpoch")?;
        let (peer_epoch, layout, config) = if total == NOTIFICATION_LEGACY28_BYTES {
            (epoch_of(zxid), NotificationLayout::Legacy28, None)
        } else {
            let peer_epoch = r.read_i64("Notification.peerEpoch")?;
            if total == NOTIFICATION_LEGACY40_BYTES {
                let b = r.rest();
                let ignored = [b[0], b[1], b[2], b[3]];
                (peer_epoch, NotificationLayout::Legacy40 { ignored }, None)
            } else {
                let version = r.read_i32("Notification.version")?;
                let config = if version > 1 {
                    Some(
                        r.read_buffer("Notification.config")?
                            .ok_or(DecodeError::BadLength {
                                what: "Notification.config",
                                len: -1,
                                offset: NOTIFICATION_FIXED_BYTES - 4,
                            })?,
                    )
                } else {
                    None
                };
                (
                    peer_epoch,
                    NotificationLayout::Versioned { version },
                    config,
                )
            }
        };
        let trailing = r.rest();
        let state = ServerState::from_code(state_code).ok_or(DecodeError::Invalid {
            what: "Notification.state",
            value: state_code as i64,
        })?;
        Ok(Notification {
            state,
            leader,
            zxid,
            election_epoch,
            peer_epoch,
            layout,
            config,
            trailing,
        })
    }

    pub fn encode(&self, w: &mut Writer) {
        w.write_i32(self.state.code());
        w.write_i64(self.leader);
        w.write_i64(self.zxid);
        w.write_i64(self.election_epoch);
        match self.layout {
            NotificationLayout::Legacy28 => {}
            NotificationLayout::Legacy40 { ignored } => {
                w.write_i64(self.peer_epoch);
                w.write_raw(&ignored);
            }
            NotificationLayout::Versioned { version } => {
                w.write_i64(self.peer_epoch);
                w.write_i32(version);
                if version > 1 {
                    w.write_buffer(Some(self.config.as_deref().unwrap_or_default()));
                }
                w.write_raw(&self.trailing);
            }
        }
    }

    /// The payload bytes (without the frame's length prefix).
    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(
            NOTIFICATION_FIXED_BYTES + self.config.as_ref().map_or(0, |c| c.len()),
        );
        self.encode(&mut w);
        w.into_bytes()
    }

    /// One whole election message: length prefix and payload.
    pub fn to_frame(&self) -> Bytes {
        let payload = self.to_bytes();
        let mut w = Writer::with_capacity(4 + payload.len());
        write_election_frame(&mut w, &payload);
        w.into_bytes()
    }
}

// ---------------------------------------------------------------------------------------
// Quorum port
// ---------------------------------------------------------------------------------------

/// `QuorumPacket.type` (`Leader.java` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 1, learner -> leader: a client write to run on the leader.
    Request,
    /// 2, leader -> follower: a txn to log and ACK.
    Proposal,
    /// 3, follower -> leader: acknowledges a proposal, NEWLEADER or UPTODATE.
    Ack,
    /// 4, leader -> follower: commit up to `zxid`.
    Commit,
    /// 5, both: liveness; the learner's reply carries session touches.
    Ping,
    /// 6, both: session revalidation on reconnect to a learner.
    Revalidate,
    /// 7, leader -> learner: releases the oldest pending client `sync`.
    Sync,
    /// 8, leader -> observer: a committed txn.
    Inform,
    /// 9, leader -> follower: commit of a reconfig, with the designated leader.
    CommitAndActivate,
    /// 10, leader -> learner: end of sync; data = config text.
    NewLeader,
    /// 11, follower -> leader: first packet; data = LearnerInfo.
    FollowerInfo,
    /// 12, leader -> learner: start serving.
    UpToDate,
    /// 13, leader -> learner: proposals and commits follow.
    Diff,
    /// 14, leader -> learner: truncate the log to `zxid`.
    Trunc,
    /// 15, leader -> learner: a snapshot follows on the stream.
    Snap,
    /// 16, observer -> leader: first packet; data = LearnerInfo.
    ObserverInfo,
    /// 17, leader -> learner: the new epoch; data = protocol version.
    LeaderInfo,
    /// 18, learner -> leader: answers LEADERINFO; data = current epoch.
    AckEpoch,
    /// 19, leader -> observer: INFORM of a reconfig, with the designated leader.
    InformAndActivate,
    /// Any other value: Java's reader accepts it and the handler logs it.
    Unknown(i32),
}

impl PacketType {
    pub fn code(self) -> i32 {
        match self {
            PacketType::Request => 1,
            PacketType::Proposal => 2,
            PacketType::Ack => 3,
            PacketType::Commit => 4,
            PacketType::Ping => 5,
            PacketType::Revalidate => 6,
            PacketType::Sync => 7,
            PacketType::Inform => 8,
            PacketType::CommitAndActivate => 9,
            PacketType::NewLeader => 10,
            PacketType::FollowerInfo => 11,
            PacketType::UpToDate => 12,
            PacketType::Diff => 13,
            PacketType::Trunc => 14,
            PacketType::Snap => 15,
            PacketType::ObserverInfo => 16,
            PacketType::LeaderInfo => 17,
            PacketType::AckEpoch => 18,
            PacketType::InformAndActivate => 19,
            PacketType::Unknown(code) => code,
        }
    }

    pub fn from_code(code: i32) -> PacketType {
        match code {
            1 => PacketType::Request,
            2 => PacketType::Proposal,
            3 => PacketType::Ack,
            4 => PacketType::Commit,
            5 => PacketType::Ping,
            6 => PacketType::Revalidate,
            7 => PacketType::Sync,
            8 => PacketType::Inform,
            9 => PacketType::CommitAndActivate,
            10 => PacketType::NewLeader,
            11 => PacketType::FollowerInfo,
            12 => PacketType::UpToDate,
            13 => PacketType::Diff,
            14 => PacketType::Trunc,
            15 => PacketType::Snap,
            16 => PacketType::ObserverInfo,
            17 => PacketType::LeaderInfo,
            18 => PacketType::AckEpoch,
            19 => PacketType::InformAndActivate,
            other => PacketType::Unknown(other),
        }
    }
}

/// `QuorumPacket { int type; long zxid; buffer data; vector<Id> authinfo; }`. `None` is
/// jute's null (length -1), which Java writes for absent data and authinfo: keeping it apart
/// from empty keeps re-encoding byte-identical (a PING reply without touches has empty data,
/// the leader's PING has null data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPacket {
    pub packet_type: PacketType,
    pub zxid: i64,
    pub data: Option<Bytes>,
    pub authinfo: Option<Vec<Id>>,
}

impl QuorumPacket {
    /// A packet with null authinfo, as Java builds all but REQUEST.
    pub fn new(packet_type: PacketType, zxid: i64, data: Option<Bytes>) -> QuorumPacket {
        QuorumPacket {
            packet_type,
            zxid,
            data,
            authinfo: None,
        }
    }

    /// The data, with null read as empty.
    pub fn data_bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or_default()
    }

    /// Phase one: is a whole packet at the front of `buf`? `max_buffer` bounds `data` and
    /// each `Id` string ([`QUORUM_BUFFER_BYTES_MAX_DEFAULT`] unless configured).
    pub fn check(buf: &[u8], max_buffer: usize) -> Result<Check, DecodeError> {
        let mut p = Peek { buf, pos: 0 };
        if p.i32().is_none() || p.i64().is_none() {
            return Ok(Check::Incomplete);
        }
        if p.buffer("QuorumPacket.data", max_buffer)?.is_none() {
            return Ok(Check::Incomplete);
        }
        let offset = p.pos;
        let Some(count) = p.i32() else {
            return Ok(Check::Incomplete);
        };
        if count < -1 || count > QUORUM_PACKET_AUTHINFO_IDS_MAX as i32 {
            return Err(DecodeError::BadLength {
                what: "QuorumPacket.authinfo",
                len: count as i64,
                offset,
            });
        }
        for _ in 0..count.max(0) {
            if p.buffer("Id.scheme", max_buffer)?.is_none()
                || p.buffer("Id.id", max_buffer)?.is_none()
            {
                return Ok(Check::Incomplete);
            }
        }
        Ok(Check::Complete { len: p.pos })
    }

    /// Phase two: parses exactly one packet (as delimited by [`QuorumPacket::check`]).
    pub fn parse(item: &[u8]) -> DecodeResult<QuorumPacket> {
        let mut r = Reader::from_slice(item);
        let packet = QuorumPacket::read(&mut r)?;
        expect_consumed(&r, "QuorumPacket")?;
        Ok(packet)
    }

    /// Both phases: `Ok(None)` while incomplete, else the packet and the bytes it consumed.
    pub fn decode(
        buf: &[u8],
        max_buffer: usize,
    ) -> Result<Option<(QuorumPacket, usize)>, DecodeError> {
        match QuorumPacket::check(buf, max_buffer)? {
            Check::Incomplete => Ok(None),
            Check::Complete { len } => Ok(Some((QuorumPacket::parse(&buf[..len])?, len))),
        }
    }
}

impl Record for QuorumPacket {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.packet_type.code());
        w.write_i64(self.zxid);
        w.write_buffer(self.data.as_deref());
        match &self.authinfo {
            None => w.write_i32(-1),
            Some(ids) => {
                w.write_i32(ids.len() as i32);
                for id in ids {
                    id.write(w);
                }
            }
        }
    }

    fn read(r: &mut Reader) -> DecodeResult<QuorumPacket> {
        Ok(QuorumPacket {
            packet_type: PacketType::from_code(r.read_i32("QuorumPacket.type")?),
            zxid: r.read_i64("QuorumPacket.zxid")?,
            data: r.read_buffer("QuorumPacket.data")?,
            authinfo: r.read_vec("QuorumPacket.authinfo", 8, Id::read)?,
        })
    }
}

/// Reads a payload that must be exactly consumed.
fn payload<T>(
    data: &[u8],
    what: &'static str,
    f: impl FnOnce(&mut Reader) -> DecodeResult<T>,
) -> DecodeResult<T> {
    let mut r = Reader::from_slice(data);
    let v = f(&mut r)?;
    expect_consumed(&r, what)?;
    Ok(v)
}

/// FOLLOWERINFO / OBSERVERINFO data: `LearnerInfo { long serverid; int protocolVersion;
/// long configVersion; }`. Older learners send only the first field (8 bytes) or the first
/// two (12); the leader reads what is there and ignores anything beyond 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    pub server_id: Sid,
    pub protocol_version: Option<i32>,
    pub config_version: Option<i64>,
}

impl LearnerInfo {
    /// What a 3.8 learner sends.
    pub fn new(server_id: Sid, config_version: i64) -> LearnerInfo {
        LearnerInfo {
            server_id,
            protocol_version: Some(QUORUM_PROTOCOL_VERSION),
            config_version: Some(config_version),
        }
    }

    pub fn decode(data: &[u8]) -> DecodeResult<LearnerInfo> {
        let mut r = Reader::from_slice(data);
        let server_id = r.read_i64("LearnerInfo.serverid")?;
        let protocol_version = if data.len() >= 12 {
            Some(r.read_i32("LearnerInfo.protocolVersion")?)
        } else {
            None
        };
        let config_version = if data.len() >= 20 {
            Some(r.read_i64("LearnerInfo.configVersion")?)
        } else {
            None
        };
        Ok(LearnerInfo {
            server_id,
            protocol_version,
            config_version,
        })
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(20);
        w.write_i64(self.server_id);
        if let Some(v) = self.protocol_version {
            w.write_i32(v);
            if let Some(c) = self.config_version {
                w.write_i64(c);
            }
        }
        w.into_bytes()
    }
}

/// LEADERINFO data: `int protocolVersion` ([`QUORUM_PROTOCOL_VERSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderInfo {
    pub protocol_version: i32,
}

impl LeaderInfo {
    pub fn decode(data: &[u8]) -> DecodeResult<LeaderInfo> {
        payload(data, "LeaderInfo", |r| {
            Ok(LeaderInfo {
                protocol_version: r.read_i32("LeaderInfo.protocolVersion")?,
            })
        })
    }

    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.protocol_version.to_be_bytes())
    }
}

/// ACKEPOCH data: `int currentEpoch`, or [`ACK_EPOCH_ALREADY_ACCEPTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckEpoch {
    pub current_epoch: i32,
}

impl AckEpoch {
    pub fn decode(data: &[u8]) -> DecodeResult<AckEpoch> {
        payload(data, "AckEpoch", |r| {
            Ok(AckEpoch {
                current_epoch: r.read_i32("AckEpoch.epoch")?,
            })
        })
    }

    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.current_epoch.to_be_bytes())
    }
}

/// REQUEST data: `long sessionId, int cxid, int type` then the request body (the client's
/// request record, without its RequestHeader). The packet's authinfo carries the client's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerRequest {
    pub session_id: i64,
    pub cxid: i32,
    pub op: i32,
    pub body: Bytes,
}

impl LearnerRequest {
    pub fn decode(data: &[u8]) -> DecodeResult<LearnerRequest> {
        let mut r = Reader::from_slice(data);
        Ok(LearnerRequest {
            session_id: r.read_i64("Request.sessionId")?,
            cxid: r.read_i32("Request.cxid")?,
            op: r.read_i32("Request.type")?,
            body: r.rest(),
        })
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(16 + self.body.len());
        w.write_i64(self.session_id);
        w.write_i32(self.cxid);
        w.write_i32(self.op);
        w.write_raw(&self.body);
        w.into_bytes()
    }
}

/// One entry of a learner's PING reply: a session touched since the last ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTouch {
    pub session_id: i64,
    pub timeout_ms: i32,
}

/// Bytes of one [`SessionTouch`].
pub const SESSION_TOUCH_BYTES: usize = 12;

/// A learner's PING reply data: `{long sessionId; int timeout}*` to the end (empty, not
/// null, when nothing was touched). A partial entry is an error, as Java's reader fails.
pub fn decode_ping_touches(data: &[u8]) -> DecodeResult<Vec<SessionTouch>> {
    if !data.len().is_multiple_of(SESSION_TOUCH_BYTES) {
        return Err(DecodeError::BadLength {
            what: "PING touches",
            len: data.len() as i64,
            offset: 0,
        });
    }
    let mut r = Reader::from_slice(data);
    let mut out = Vec::with_capacity(data.len() / SESSION_TOUCH_BYTES);
    while !r.is_empty() {
        out.push(SessionTouch {
            session_id: r.read_i64("PING.sessionId")?,
            timeout_ms: r.read_i32("PING.timeout")?,
        });
    }
    Ok(out)
}

pub fn encode_ping_touches(touches: &[SessionTouch]) -> Bytes {
    let mut w = Writer::with_capacity(touches.len() * SESSION_TOUCH_BYTES);
    for t in touches {
        w.write_i64(t.session_id);
        w.write_i32(t.timeout_ms);
    }
    w.into_bytes()
}

/// REVALIDATE from a learner: `long sessionId, int timeout` (packet zxid -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevalidateRequest {
    pub session_id: i64,
    pub timeout_ms: i32,
}

impl RevalidateRequest {
    pub fn decode(data: &[u8]) -> DecodeResult<RevalidateRequest> {
        payload(data, "RevalidateRequest", |r| {
            Ok(RevalidateRequest {
                session_id: r.read_i64("REVALIDATE.sessionId")?,
                timeout_ms: r.read_i32("REVALIDATE.timeout")?,
            })
        })
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(12);
        w.write_i64(self.session_id);
        w.write_i32(self.timeout_ms);
        w.into_bytes()
    }
}

/// REVALIDATE from the leader: `long sessionId, boolean valid` (the learner's packet with
/// its data replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevalidateReply {
    pub session_id: i64,
    pub valid: bool,
}

impl RevalidateReply {
    pub fn decode(data: &[u8]) -> DecodeResult<RevalidateReply> {
        payload(data, "RevalidateReply", |r| {
            Ok(RevalidateReply {
                session_id: r.read_i64("REVALIDATE.sessionId")?,
                valid: r.read_bool("REVALIDATE.valid")?,
            })
        })
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(9);
        w.write_i64(self.session_id);
        w.write_bool(self.valid);
        w.into_bytes()
    }
}

/// COMMITANDACTIVATE data (`long designatedLeader`) and INFORMANDACTIVATE data (the same
/// long followed by the txn bytes, which are empty for COMMITANDACTIVATE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activate {
    pub designated_leader: Sid,
    pub txn: Bytes,
}

impl Activate {
    pub fn decode(data: &[u8]) -> DecodeResult<Activate> {
        let mut r = Reader::from_slice(data);
        Ok(Activate {
            designated_leader: r.read_i64("Activate.designatedLeader")?,
            txn: r.rest(),
        })
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut w = Writer::with_capacity(8 + self.txn.len());
        w.write_i64(self.designated_leader);
        w.write_raw(&self.txn);
        w.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_parts() {
        assert_eq!(make_zxid(2, 6), 0x2_0000_0006);
        assert_eq!(epoch_of(0x2_0000_0006), 2);
        assert_eq!(counter_of(0x2_0000_0006), 6);
        assert_eq!(epoch_of(i64::MIN), -(1 << 31));
    }

    #[test]
    fn legacy_notifications_round_trip() {
        let mut w = Writer::new();
        w.write_i32(1);
        w.write_i64(3);
        w.write_i64(0x5_0000_0001);
        w.write_i64(7);
        let b28 = w.as_slice().to_vec();
        let n = Notification::decode(&b28).unwrap();
        assert_eq!(n.layout, NotificationLayout::Legacy28);
        assert_eq!(n.peer_epoch, 5);
        assert_eq!(n.version(), 0);
        assert_eq!(&n.to_bytes()[..], &b28[..]);

        w.write_i64(4);
        w.write_i32(1);
        let b40 = w.as_slice().to_vec();
        let n = Notification::decode(&b40).unwrap();
        assert_eq!(
            n.layout,
            NotificationLayout::Legacy40 {
                ignored: [0, 0, 0, 1]
            }
        );
        assert_eq!(n.peer_epoch, 4);
        assert_eq!(n.config, None);
        assert_eq!(&n.to_bytes()[..], &b40[..]);
    }

    #[test]
    fn short_and_malformed_notifications_are_errors() {
        assert!(Notification::decode(&[0u8; 27]).is_err());
        assert!(Notification::decode(&[0u8; 36]).is_err()); // peerEpoch but no version
        let mut n = Notification::new(ServerState::Looking, 1, 0, 1, 0, Bytes::from("x"))
            .to_bytes()
            .to_vec();
        n[0..4].copy_from_slice(&9i32.to_be_bytes());
        assert!(Notification::decode(&n).is_err()); // unknown state
        let mut n = Notification::new(ServerState::Looking, 1, 0, 1, 0, Bytes::from("xy"))
            .to_bytes()
            .to_vec();
        n.truncate(n.len() - 1);
        assert!(Notification::decode(&n).is_err()); // config cut short
    }

    #[test]
    fn election_header_forms() {
        assert_eq!(ElectionHeader::check(&[0; 7]), Ok(Check::Incomplete));
        let legacy = 5i64.to_be_bytes();
        assert_eq!(
            ElectionHeader::decode(&legacy),
            Ok(Some((ElectionHeader::Legacy { sid: 5 }, 8)))
        );
        let h = ElectionHeader::new(2, "127.0.0.1:3888");
        let b = h.to_bytes();
        for cut in 0..b.len() {
            assert_eq!(ElectionHeader::check(&b[..cut]), Ok(Check::Incomplete));
        }
        assert_eq!(ElectionHeader::decode(&b), Ok(Some((h.clone(), b.len()))));
        assert_eq!(h.address_list(), vec!["127.0.0.1:3888".to_owned()]);
        let mut bad = b.to_vec();
        bad[..8].copy_from_slice(&(-3i64).to_be_bytes());
        assert!(ElectionHeader::check(&bad).is_err());
        let mut w = Writer::new();
        w.write_i64(ELECTION_PROTOCOL_VERSION_V2);
        w.write_i64(1);
        w.write_i32(ELECTION_HEADER_ADDRESS_BYTES_MAX as i32 + 1);
        assert!(ElectionHeader::check(w.as_slice()).is_err());
    }

    #[test]
    fn election_frame_limits() {
        assert!(check_election_frame(&0i32.to_be_bytes()).is_err());
        assert!(
            check_election_frame(&(ELECTION_MESSAGE_BYTES_MAX as i32 + 1).to_be_bytes()).is_err()
        );
        assert_eq!(
            check_election_frame(&(ELECTION_MESSAGE_BYTES_MAX as i32).to_be_bytes()),
            Ok(Check::Incomplete)
        );
    }

    #[test]
    fn quorum_packet_incomplete_at_every_cut() {
        let p = QuorumPacket {
            packet_type: PacketType::Request,
            zxid: -1,
            data: Some(Bytes::from_static(b"abc")),
            authinfo: Some(vec![Id::new("ip", "127.0.0.1")]),
        };
        let b = p.to_bytes();
        for cut in 0..b.len() {
            assert_eq!(
                QuorumPacket::check(&b[..cut], QUORUM_BUFFER_BYTES_MAX_DEFAULT),
                Ok(Check::Incomplete),
                "cut {cut}"
            );
        }
        let mut two = b.to_vec();
        two.extend_from_slice(&b);
        assert_eq!(
            QuorumPacket::decode(&two, QUORUM_BUFFER_BYTES_MAX_DEFAULT),
            Ok(Some((p, b.len())))
        );
    }

    #[test]
    fn quorum_packet_limits() {
        let p = QuorumPacket::new(PacketType::Proposal, 1, Some(Bytes::from(vec![0u8; 100])));
        let b = p.to_bytes();
        assert!(QuorumPacket::check(&b, 99).is_err());
        assert!(QuorumPacket::check(&b, 100).is_ok());
        let mut w = Writer::new();
        w.write_i32(1);
        w.write_i64(0);
        w.write_i32(-1);
        w.write_i32(QUORUM_PACKET_AUTHINFO_IDS_MAX as i32 + 1);
        assert!(QuorumPacket::check(w.as_slice(), 1000).is_err());
        assert_eq!(PacketType::from_code(42), PacketType::Unknown(42));
        for code in 1..=19 {
            assert_eq!(PacketType::from_code(code).code(), code);
            assert!(!matches!(
                PacketType::from_code(code),
                PacketType::Unknown(_)
            ));
        }
    }

    #[test]
    fn typed_payloads_round_trip() {
        let li = LearnerInfo::new(3, 0);
        assert_eq!(li.to_bytes().len(), 20);
        assert_eq!(LearnerInfo::decode(&li.to_bytes()), Ok(li));
        let old = LearnerInfo::decode(&7i64.to_be_bytes()).unwrap();
        assert_eq!(old.protocol_version, None);
        assert_eq!(&old.to_bytes()[..], &7i64.to_be_bytes()[..]);
        let touches = vec![SessionTouch {
            session_id: 0x100003dd5000000,
            timeout_ms: 4000,
        }];
        assert_eq!(
            decode_ping_touches(&encode_ping_touches(&touches)),
            Ok(touches)
        );
        assert!(decode_ping_touches(&[0u8; 13]).is_err());
        let rr = RevalidateReply {
            session_id: 9,
            valid: true,
        };
        assert_eq!(RevalidateReply::decode(&rr.to_bytes()), Ok(rr));
        let a = Activate {
            designated_leader: 2,
            txn: Bytes::from_static(b"t"),
        };
        assert_eq!(Activate::decode(&a.to_bytes()), Ok(a));
        assert!(AckEpoch::decode(&[0, 0, 0]).is_err());
        assert!(LeaderInfo::decode(&[0, 1, 0, 0, 0]).is_err());
    }
}
