//! Starting and stopping a standalone server: binds the client port, starts the core task
//! and the accept loop, and stops them when told.

use crate::conn::{self, ConnContext};
use crate::core::{Clock, Core, CoreMsg};
use crate::settings::ServerSettings;
use crate::stats::ServerStats;
use corral_node::{Node, NodeConfig};
use corral_tree::{DataTree, TreeConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A running server; dropping it does not stop it, call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
    core: JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, stops the core, and waits for both.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept.await;
        let _ = self.core.await;
    }
}

fn node_config(s: &ServerSettings) -> NodeConfig {
    NodeConfig {
        tick_ms: s.tick_ms,
        min_session_timeout_ms: s.min_session_timeout_ms,
        max_session_timeout_ms: s.max_session_timeout_ms,
        server_id: s.server_id,
        super_digest: s.super_digest.clone(),
        container_check_interval_ms: s.container_check_interval_ms,
        container_max_per_minute: s.container_max_per_minute,
        container_max_never_used_ms: s.container_max_never_used_ms,
    }
}

/// Binds and starts a standalone server.
pub async fn start(settings: ServerSettings) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(settings.client_addr).await?;
    let local_addr = listener.local_addr()?;
    let clock = Clock::new();
    let now = clock.now();
    let tree = DataTree::new(TreeConfig {
        extended_types_enabled: settings.extended_types_enabled,
        skip_acl: settings.skip_acl,
        super_digest: settings.super_digest.clone(),
    });
    let node = Node::new(node_config(&settings), tree, 0, now);
    let stats = Arc::new(ServerStats::new(now.wall_ms));
    let settings = Arc::new(settings);
    let (core_tx, core_rx) = mpsc::channel::<CoreMsg>(settings.global_outstanding_limit.max(1));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let core = Core::new(node, settings.clone(), stats.clone(), clock);
    let core = tokio::spawn(core.run(core_rx, shutdown_rx.clone()));
    let ctx = Arc::new(ConnContext {
        core: core_tx,
        stats: stats.clone(),
        max_frame_bytes: settings.jute_maxbuffer_bytes,
    });
    let accept = tokio::spawn(accept_loop(
        listener,
        ctx,
        settings.clone(),
        clock,
        shutdown_rx,
    ));
    tracing::info!(%local_addr, "corral serving clients (standalone)");
    Ok(RunningServer {
        local_addr,
        shutdown: shutdown_tx,
        accept,
        core,
    })
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ConnContext>,
    settings: Arc<ServerSettings>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_conn: u64 = 1;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if settings.max_client_cnxns > 0
            && ctx.stats.connections_from(peer.ip()) >= settings.max_client_cnxns
        {
            tracing::warn!(%peer, limit = settings.max_client_cnxns, "too many connections from this address; closing");
            drop(stream);
            continue;
        }
        let conn = next_conn;
        next_conn += 1;
        tokio::spawn(conn::serve(
            stream,
            peer,
            conn,
            ctx.clone(),
            clock.wall_ms(),
        ));
    }
}
