//! One client connection: a reader that frames and decodes, and a writer that drains the
//! connection's queue.
//!
//! The first 4 bytes of a fresh connection are either a frame length or a four-letter word
//! (ZooKeeper's rule). After that, frames are `int32 len` + body; a negative or oversized
//! length (`jute.maxbuffer`), an undecodable ConnectRequest, or a malformed request closes
//! this connection only. The reader never parses bodies on the core: it decodes here, on
//! whichever runtime thread runs this task, and sends typed requests.

use crate::core::{ConnOut, CoreMsg, RequestIn, REQUESTS_PER_MSG_MAX};
use crate::fourlw;
use crate::stats::{ConnStats, ServerStats};
use bytes::{Buf, BytesMut};
use corral_node::ConnId;
use corral_proto::frame::{check, FrameCheck};
use corral_proto::{ConnectRequest, Reader, Record, Request, RequestHeader};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// A connection that has not sent its ConnectRequest by then is closed
/// (`zookeeper.nio.sessionlessCnxnTimeout`).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Initial receive buffer per connection. Small on purpose: most connections are idle or
/// carry small requests, and large per-connection buffers that come and go fragment the
/// allocator's heap (resident memory grew with connection churn when this was 64 KiB).
const READ_BUFFER_INITIAL_BYTES: usize = 4 * 1024;

/// How much the receive buffer grows by when a frame needs more room.
const READ_GROW_BYTES: usize = 16 * 1024;

/// Bytes the writer gathers from its queue before one write call.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// A writer's batch buffer larger than this after a burst is given back.
const WRITE_BUFFER_KEEP_BYTES: usize = 16 * 1024;

pub struct ConnContext {
    pub core: mpsc::Sender<CoreMsg>,
    pub stats: Arc<ServerStats>,
    pub max_frame_bytes: usize,
}

/// Serves one accepted socket until it closes.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    ctx: Arc<ConnContext>,
    now_wall_ms: i64,
) {
    let _ = stream.set_nodelay(true);
    let cstats = Arc::new(ConnStats::new(peer, now_wall_ms));
    ctx.stats
        .connections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(conn, cstats.clone());
    let bound = run(stream, peer, conn, &ctx, cstats).await;
    ctx.stats
        .connections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&conn);
    if bound {
        let _ = ctx.core.send(CoreMsg::Disconnected { conn }).await;
    }
}

/// Returns whether the connection was registered with the core (so it must be told).
async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    ctx: &ConnContext,
    cstats: Arc<ConnStats>,
) -> bool {
    let (mut rd, wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(READ_BUFFER_INITIAL_BYTES);

    // Phase 1: four-letter word or ConnectRequest, within the handshake timeout.
    let first = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), async {
        while buf.len() < 4 {
            if rd.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
    if !matches!(first, Ok(Some(()))) {
        return false;
    }
    if let Some(cmd) = fourlw::recognise(&buf[..4]) {
        cstats.received.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        if ctx
            .core
            .send(CoreMsg::FourLetter {
                cmd: cmd.to_owned(),
                reply: tx,
            })
            .await
            .is_ok()
        {
            if let Ok(text) = rx.await {
                let mut wr = wr;
                let _ = wr.write_all(text.as_bytes()).await;
                let _ = wr.shutdown().await;
            }
        }
        return false;
    }
    let connect = match read_frame(
        &mut rd,
        &mut buf,
        ctx.max_frame_bytes,
        Some(HANDSHAKE_TIMEOUT_MS),
    )
    .await
    {
        Some(body) => match ConnectRequest::read(&mut Reader::new(body.freeze())) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "malformed ConnectRequest; closing");
                return false;
            }
        },
        None => return false,
    };
    cstats.received.fetch_add(1, Relaxed);
    ctx.stats.packets_received.fetch_add(1, Relaxed);

    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let closed = Arc::new(Notify::new());
    let writer = tokio::spawn(write_loop(
        wr,
        out_rx,
        cstats.clone(),
        ctx.stats.clone(),
        closed.clone(),
    ));
    let msg = CoreMsg::Connect {
        conn,
        peer_ip: peer.ip().to_string(),
        req: connect,
        out: out_tx,
        stats: cstats.clone(),
    };
    if ctx.core.send(msg).await.is_err() {
        return false;
    }

    // Phase 2: requests, until EOF, a bad frame, or the writer closing the connection.
    // One `Notified` for the whole loop (not one per frame): the writer's `notify_one`
    // either wakes it or leaves a permit that its next poll takes.
    let writer_closed = closed.notified();
    tokio::pin!(writer_closed);
    loop {
        let body = tokio::select! {
            b = read_frame(&mut rd, &mut buf, ctx.max_frame_bytes, None) => b,
            _ = &mut writer_closed => None,
        };
        let Some(body) = body else { break };
        // This frame and every whole frame the same read brought go to the core as one
        // message (a pipelining client sends many per read).
        let mut reqs = Vec::new();
        let mut ok = decode_into(body, &mut reqs);
        while ok && reqs.len() < REQUESTS_PER_MSG_MAX {
            match check(&buf, ctx.max_frame_bytes) {
                FrameCheck::Complete { len } => {
                    buf.advance(4);
                    ok = decode_into(buf.split_to(len), &mut reqs);
                }
                // The next read_frame reports it (and closes).
                FrameCheck::TooLarge { .. } | FrameCheck::Incomplete => break,
            }
        }
        if !ok {
            tracing::debug!(%peer, "request frame shorter than its header; closing");
        }
        if !reqs.is_empty() {
            let n = reqs.len() as u64;
            cstats.received.fetch_add(n, Relaxed);
            cstats.queued.fetch_add(n as i64, Relaxed);
            ctx.stats.packets_received.fetch_add(n, Relaxed);
            ctx.stats.outstanding.fetch_add(n as i64, Relaxed);
            let msg = CoreMsg::Requests {
                conn,
                reqs,
                received: Instant::now(),
            };
            if ctx.core.send(msg).await.is_err() {
                break;
            }
        }
        if !ok {
            break;
        }
    }
    // The writer ends by itself: after a Close it has flushed and shut the socket; on EOF
    // it ends once the core, told of the disconnect, drops the connection's queue.
    drop(writer);
    true
}

/// Decodes one request frame body into `reqs`; false if it is shorter than its header
/// (the connection is then closed).
fn decode_into(body: BytesMut, reqs: &mut Vec<RequestIn>) -> bool {
    let mut r = Reader::new(body.freeze());
    let Ok(hdr) = RequestHeader::read(&mut r) else {
        return false;
    };
    let decoded = Request::decode(hdr.op, &mut r);
    reqs.push(RequestIn {
        xid: hdr.xid,
        op: hdr.op,
        decoded,
    });
    true
}

/// Reads one frame body. `None` on EOF, I/O error, timeout, or an unacceptable length.
async fn read_frame(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    max_frame_bytes: usize,
    timeout_ms: Option<u64>,
) -> Option<BytesMut> {
    let deadline = timeout_ms.map(|ms| tokio::time::Instant::now() + Duration::from_millis(ms));
    loop {
        match check(buf, max_frame_bytes) {
            FrameCheck::Complete { len } => {
                buf.advance(4);
                return Some(buf.split_to(len));
            }
            FrameCheck::TooLarge { len } => {
                tracing::info!(
                    len,
                    max_frame_bytes,
                    "frame length out of range; closing connection"
                );
                return None;
            }
            FrameCheck::Incomplete => {}
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_GROW_BYTES);
        }
        let read = rd.read_buf(buf);
        let n = match deadline {
            Some(d) => tokio::time::timeout_at(d, read).await.ok()?.ok()?,
            None => read.await.ok()?,
        };
        if n == 0 {
            return None;
        }
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<ConnOut>,
    cstats: Arc<ConnStats>,
    stats: Arc<ServerStats>,
    closed: Arc<Notify>,
) {
    let mut batch: Vec<u8> = Vec::new();
    let mut closing = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Counters are published once per write, not per frame: the server-wide ones are
        // shared by every connection's writer, and touching them per frame costs more than
        // building a small reply.
        let mut frames = 0u64;
        let mut last_bytes = 0u64;
        let mut max_bytes = 0u64;
        // Gather what is already queued into one write.
        while let Some(item) = next.take() {
            match item {
                ConnOut::Frame(f) => {
                    last_bytes = f.len() as u64;
                    max_bytes = max_bytes.max(last_bytes);
                    frames += 1;
                    batch.extend_from_slice(&f);
                }
                ConnOut::Close => {
                    closing = true;
                    break;
                }
            }
            if batch.len() >= WRITE_BATCH_BYTES {
                break;
            }
            next = rx.try_recv().ok();
        }
        if frames > 0 {
            stats.last_response_bytes.store(last_bytes, Relaxed);
            stats.max_response_bytes.fetch_max(max_bytes, Relaxed);
            stats.packets_sent.fetch_add(frames, Relaxed);
            cstats.sent.fetch_add(frames, Relaxed);
        }
        if !batch.is_empty() {
            if wr.write_all(&batch).await.is_err() {
                break;
            }
            batch.clear();
            if batch.capacity() > WRITE_BUFFER_KEEP_BYTES {
                batch.shrink_to(WRITE_BUFFER_KEEP_BYTES);
            }
        }
        if closing {
            break;
        }
    }
    let _ = wr.shutdown().await;
    closed.notify_one();
}
