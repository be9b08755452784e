//! The quorum port (ZooKeeper's `Leader`/`LearnerHandler` sockets and `Learner`'s
//! connection to its leader): framing of [`QuorumPacket`]s and of the snapshot that follows
//! SNAP, over tokio.
//!
//! **Owns** the sockets: an accept loop that hands every learner connection to the core as
//! [`QuorumEvent::PeerConnected`], the learner's connect attempts to its leader, and for
//! each connection a reader task and a writer task. It decides nothing: every packet goes
//! to the core, in the order it arrived, and the core's [`PeerOut`]s go out in the order
//! given.
//!
//! Wire format (§9.4 of the reference): packets are bare jute `QuorumPacket`s, no length
//! prefix, decoded in two phases ([`QuorumPacket::check`]). After a SNAP packet the stream
//! carries the snapshot body and signature ([`corral_storage::snapstream`]); the reader
//! builds the tree from it off the runtime and delivers it as one event, before any later
//! packet. A malformed packet closes that connection only.
//!
//! Learner connections are numbered by a generation so that events of a connection the
//! core has given up on are recognised and ignored.

use bytes::{Buf, BytesMut};
use corral_node::replica::SnapshotView;
use corral_proto::quorum::{PacketType, QuorumPacket, QUORUM_BUFFER_BYTES_MAX_DEFAULT};
use corral_proto::{Record, Writer};
use corral_storage::snapstream::{self, SnapStreamCheck, SnapStreamScanner};
use corral_tree::{DataTree, TreeConfig};
use corral_zab::leader::PeerId;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Bytes read from a quorum socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Largest snapshot stream accepted after SNAP (the whole tree, in memory while it loads).
pub const SNAP_STREAM_BYTES_MAX: usize = 8 << 30;
/// Wait between attempts to reach the leader's quorum port.
const CONNECT_RETRY: Duration = Duration::from_millis(20);
/// Refused connections tolerated before giving up on a leader. A corral member listens on
/// its quorum port from start-up, so a refusal means the elected leader is gone (the
/// election acted on stale votes); a ZooKeeper leader opens the port a moment after
/// deciding, which a few retries cover. Giving up sends the learner back to election at
/// once instead of after initLimit.
const CONNECT_REFUSED_MAX: u32 = 5;

/// What the core tells a connection's writer.
#[derive(Debug)]
pub enum PeerOut {
    Packet(QuorumPacket),
    /// SNAP with `zxid`, then the snapshot stream of `view`.
    Snapshot {
        zxid: i64,
        view: SnapshotView,
    },
    Close,
}

pub type PeerSender = mpsc::UnboundedSender<PeerOut>;

/// What the sockets tell the core.
pub enum QuorumEvent {
    PeerConnected {
        peer: PeerId,
        out: PeerSender,
    },
    PeerPacket {
        peer: PeerId,
        packet: QuorumPacket,
    },
    PeerClosed {
        peer: PeerId,
    },
    LeaderConnected {
        gen: u64,
        out: PeerSender,
    },
    LeaderPacket {
        gen: u64,
        packet: QuorumPacket,
    },
    LeaderSnapshot {
        gen: u64,
        zxid: i64,
        tree: Result<Box<DataTree>, String>,
    },
    LeaderClosed {
        gen: u64,
    },
}

/// Which side of a connection a reader serves.
#[derive(Clone, Copy)]
enum Side {
    /// The leader's end of a learner connection.
    Leader(PeerId),
    /// A learner's end of its leader connection.
    Learner(u64),
}

/// Accepts learner connections for the life of the server; the core closes those that
/// arrive while it is not leading.
pub async fn accept_loop(
    listener: TcpListener,
    events: mpsc::UnboundedSender<QuorumEvent>,
    tree_cfg: TreeConfig,
) {
    let mut next_peer: PeerId = 0;
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        next_peer += 1;
        let peer = next_peer;
        tracing::debug!(peer, %addr, "learner connection");
        let out = spawn_connection(stream, Side::Leader(peer), events.clone(), tree_cfg.clone());
        if events
            .send(QuorumEvent::PeerConnected { peer, out })
            .is_err()
        {
            return;
        }
    }
}

/// Connects to the leader at `addr`, retrying until `deadline`; reports
/// [`QuorumEvent::LeaderConnected`] or [`QuorumEvent::LeaderClosed`].
pub fn connect_leader(
    gen: u64,
    addr: SocketAddr,
    deadline: Duration,
    events: mpsc::UnboundedSender<QuorumEvent>,
    tree_cfg: TreeConfig,
) {
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut refused = 0;
        loop {
            match tokio::time::timeout(deadline, TcpStream::connect(addr)).await {
                Ok(Err(e))
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && refused + 1 >= CONNECT_REFUSED_MAX =>
                {
                    tracing::warn!(%addr, "the leader refuses connections; back to election");
                    let _ = events.send(QuorumEvent::LeaderClosed { gen });
                    return;
                }
                Ok(Ok(stream)) => {
                    let out =
                        spawn_connection(stream, Side::Learner(gen), events.clone(), tree_cfg);
                    let _ = events.send(QuorumEvent::LeaderConnected { gen, out });
                    return;
                }
                Ok(Err(e)) if started.elapsed() < deadline => {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        refused += 1;
                    }
                    tracing::debug!(%addr, "leader not reachable yet: {e}");
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
                other => {
                    tracing::warn!(%addr, "cannot connect to the leader: {other:?}");
                    let _ = events.send(QuorumEvent::LeaderClosed { gen });
                    return;
                }
            }
        }
    });
}

fn spawn_connection(
    stream: TcpStream,
    side: Side,
    events: mpsc::UnboundedSender<QuorumEvent>,
    tree_cfg: TreeConfig,
) -> PeerSender {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(wr, rx));
    tokio::spawn(async move {
        if let Err(e) = read_loop(rd, side, &events, tree_cfg).await {
            tracing::info!("quorum connection closed: {e}");
        }
        let _ = events.send(match side {
            Side::Leader(peer) => QuorumEvent::PeerClosed { peer },
            Side::Learner(gen) => QuorumEvent::LeaderClosed { gen },
        });
    });
    tx
}

async fn read_loop(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    side: Side,
    events: &mpsc::UnboundedSender<QuorumEvent>,
    tree_cfg: TreeConfig,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        // Deliver every whole packet buffered.
        loop {
            let decoded = QuorumPacket::decode(&buf, QUORUM_BUFFER_BYTES_MAX_DEFAULT)
                .map_err(|e| format!("malformed quorum packet: {e}"))?;
            let Some((packet, len)) = decoded else { break };
            buf.advance(len);
            let snap = packet.packet_type == PacketType::Snap;
            let zxid = packet.zxid;
            let ev = match side {
                Side::Leader(peer) => QuorumEvent::PeerPacket { peer, packet },
                Side::Learner(gen) => QuorumEvent::LeaderPacket { gen, packet },
            };
            events.send(ev).map_err(|_| "core gone".to_string())?;
            if snap {
                let Side::Learner(gen) = side else {
                    return Err("a learner sent SNAP".into());
                };
                let body = read_snap_stream(&mut rd, &mut buf).await?;
                let cfg = tree_cfg.clone();
                let tree =
                    tokio::task::spawn_blocking(move || build_tree(&body, cfg).map(Box::new))
                        .await
                        .map_err(|e| format!("snapshot loader failed: {e}"))?;
                events
                    .send(QuorumEvent::LeaderSnapshot { gen, zxid, tree })
                    .map_err(|_| "core gone".to_string())?;
            }
        }
        buf.reserve(READ_CHUNK_BYTES);
        let n = rd
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed by the peer".into());
        }
    }
}

/// Reads until `buf` starts with a whole snapshot stream; returns it (and leaves what
/// follows in `buf`).
async fn read_snap_stream(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> Result<bytes::Bytes, String> {
    let mut scanner = SnapStreamScanner::new();
    loop {
        match scanner.scan(buf).map_err(|e| e.to_string())? {
            SnapStreamCheck::Complete { len } => return Ok(buf.split_to(len).freeze()),
            SnapStreamCheck::Incomplete => {}
        }
        if buf.len() > SNAP_STREAM_BYTES_MAX {
            return Err(format!(
                "snapshot stream larger than {SNAP_STREAM_BYTES_MAX} bytes"
            ));
        }
        buf.reserve(READ_CHUNK_BYTES.max(buf.len() / 4));
        let n = rd
            .read_buf(buf)
            .await
            .map_err(|e| format!("read snapshot: {e}"))?;
        if n == 0 {
            return Err("closed in the middle of a snapshot".into());
        }
    }
}

fn build_tree(body: &[u8], cfg: TreeConfig) -> Result<DataTree, String> {
    let mut builder = corral_tree::snapshot::TreeBuilder::new(cfg);
    snapstream::read_snap_stream(body, &mut builder).map_err(|e| e.to_string())?;
    builder.finish().map_err(|e| e.to_string())
}

async fn write_loop(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<PeerOut>,
) {
    while let Some(first) = rx.recv().await {
        let mut w = Writer::with_capacity(4 * 1024);
        let mut next = Some(first);
        let mut close = false;
        // Everything already queued goes out in one write.
        while let Some(msg) = next.take() {
            match msg {
                PeerOut::Packet(p) => p.write(&mut w),
                PeerOut::Snapshot { zxid, view } => {
                    QuorumPacket::new(PacketType::Snap, zxid, None).write(&mut w);
                    let stream = tokio::task::spawn_blocking(move || {
                        let mut out = Vec::new();
                        snapstream::write_snap_stream(view.0.as_ref(), &mut out).map(|_| out)
                    })
                    .await;
                    match stream {
                        Ok(Ok(bytes)) => w.write_raw(&bytes),
                        other => {
                            tracing::error!(
                                "cannot serialise the snapshot for a learner: {other:?}"
                            );
                            close = true;
                        }
                    }
                }
                PeerOut::Close => close = true,
            }
            if close {
                break;
            }
            next = rx.try_recv().ok();
        }
        let bytes = w.into_bytes();
        if !bytes.is_empty() && wr.write_all(&bytes).await.is_err() {
            return;
        }
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}
