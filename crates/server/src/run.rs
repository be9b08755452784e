//! Starting and stopping a standalone server: recovers the data directory, binds the client
//! port, starts the log thread, the core task and the accept loop, and stops them when told
//! (or when the log fails).

use crate::conn::{self, ConnContext};
use crate::core::{Clock, Core, CoreMsg, Engine, Storage};
use crate::durable::{self, LogSettings};
use crate::election_net::{ElectionNet, ElectionNetConfig, ElectionPeer};
use crate::ensemble::QuorumShell;
use crate::quorum_net;
use crate::settings::QuorumSettings;
use crate::settings::ServerSettings;
use crate::stats::ServerStats;
use corral_node::replica::{Replica, ReplicaConfig};
use corral_node::{Node, NodeConfig};
use corral_storage::fs::{FileSystem, StdFs};
use corral_storage::layout::DataDirs;
use corral_storage::log::LogWriterOptions;
use corral_storage::trigger::SnapTriggerConfig;
use corral_tree::TreeConfig;
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
    failed: watch::Receiver<Option<String>>,
    log_thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Resolves when the server has stopped serving because its log failed; the message
    /// says why.
    pub async fn failure(&mut self) -> String {
        loop {
            if let Some(msg) = self.failed.borrow().clone() {
                return msg;
            }
            if self.failed.changed().await.is_err() {
                // The core is gone without a failure report: wait forever (shutdown path).
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops accepting, stops the core, and waits for both.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept.await;
        let _ = self.core.await;
        if let Some(t) = self.log_thread.take() {
            // The core told the log thread to finish and sync; wait for it off the runtime.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
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

/// Recovers the data directory, binds and starts a standalone server. Errors name the
/// file, offset or address at fault.
pub async fn start(settings: ServerSettings) -> Result<RunningServer, String> {
    let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
    let dirs = DataDirs::new(&settings.data_dir, &settings.data_log_dir);
    let tree_cfg = tree_cfg_for(&settings);
    // As ZooKeeper does at every start, a snapshot of the loaded state is written, so the
    // next start does not replay the same log again. Where it is written:
    // * a fresh directory gets `snapshot.0` before anything is served: ZooKeeper refuses
    //   a directory holding logs but no snapshot, so the data directory stays one that
    //   ZooKeeper can start on whenever corral stops;
    // * a standalone server with data writes it in the background from a copy-on-write
    //   view, as it writes periodic snapshots, so readiness does not wait for it. Nothing
    //   depends on it being finished: the state it holds is already durable in the
    //   snapshot and logs recovery read, which stay until a purge that counts only
    //   completed snapshots, and a crash while it is written leaves a `.tmp` file that
    //   recovery ignores;
    // * an ensemble member writes it before serving, as before: a background snapshot
    //   could still be in flight when the leader's TRUNC removes the txns it holds, and
    //   would then land as the newest snapshot of a history that no longer exists.
    let standalone = settings.quorum.is_none();
    // Loading can take seconds on a large tree: keep it off the runtime's threads.
    let clock = Clock::new();
    // An ensemble member writes its membership into /zookeeper/config before anything is
    // written, as ZooKeeper does (so the start-up snapshot holds it too); see Replica.
    let config_node = settings.quorum.as_ref().map(|q| {
        (
            bytes::Bytes::from(q.config_text.clone()),
            q.config_version,
            clock.now().wall_ms,
        )
    });
    let recovered = {
        let (fs, dirs) = (fs.clone(), dirs.clone());
        tokio::task::spawn_blocking(move || {
            let mut r = durable::recover(fs.clone(), &dirs, tree_cfg)?;
            if let Some((text, version, wall_ms)) = &config_node {
                r.tree.init_config_node(text, *version, *wall_ms);
            }
            if r.fresh || !standalone {
                let view = r.tree.snapshot_source(r.last_zxid);
                let what = durable::write_snapshot_now(fs.as_ref(), &dirs, &view, r.last_zxid)
                    .map_err(|e| format!("cannot write the start-up snapshot: {e}"))?;
                tracing::info!("start-up snapshot: {what}");
            }
            Ok::<_, String>(r)
        })
        .await
        .map_err(|e| format!("recovery thread failed: {e}"))??
    };
    let background_startup_snapshot = standalone && !recovered.fresh;
    let listener = TcpListener::bind(settings.client_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.client_addr))?;
    let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let now = clock.now();
    let last_zxid = recovered.last_zxid;
    let recent = recovered.recent;
    let recent_floor = recovered.recent_floor;
    let node = Node::new(node_config(&settings), recovered.tree, last_zxid, now);
    let mut initial_outputs = Vec::new();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let log_settings = LogSettings {
        writer: LogWriterOptions {
            prealloc_bytes: settings.prealloc_bytes,
            force_sync: settings.force_sync,
            ..LogWriterOptions::default()
        },
        trigger: SnapTriggerConfig {
            snap_count: settings.snap_count_txns,
            snap_size_bytes: settings.snap_size_limit_bytes,
        },
        trigger_seed: trigger_seed(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(now.wall_ms as u64),
            std::process::id(),
            settings.server_id,
        ),
    };
    // Standalone: the log thread releases durable replies itself.
    let gate = settings
        .quorum
        .is_none()
        .then(|| Arc::new(crate::gate::ReleaseGate::new(last_zxid)));
    let (log_tx, log_thread) = durable::spawn_log_thread(
        fs.clone(),
        &dirs,
        last_zxid,
        log_settings,
        events_tx.clone(),
        gate.clone(),
    )
    .map_err(|e| format!("cannot open the txn log in {}: {e}", dirs.log_dir.display()))?;
    let storage = Storage {
        fs: fs.clone(),
        dirs: dirs.clone(),
        log: log_tx,
        events: events_rx,
        events_tx,
        durable_zxid: last_zxid,
        gate,
    };
    let stats = Arc::new(ServerStats::new(now.wall_ms));
    let settings = Arc::new(settings);
    let (core_tx, core_rx) = mpsc::channel::<CoreMsg>(settings.global_outstanding_limit.max(1));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (failed_tx, failed_rx) = watch::channel(None);
    let engine = match &settings.quorum {
        None => Engine::Standalone(Box::new(node)),
        Some(q) => {
            let (accepted, current) = read_epochs(fs.as_ref(), &dirs, last_zxid)?;
            let cfg = ReplicaConfig {
                my_sid: q.my_sid,
                voters: q.voters().map(|m| m.sid).collect(),
                observers: q.observers().map(|m| m.sid).collect(),
                tick_ms: settings.tick_ms,
                init_limit_ticks: q.init_limit_ticks,
                sync_limit_ticks: q.sync_limit_ticks,
                config_text: bytes::Bytes::from(q.config_text.clone()),
                config_version: q.config_version,
            };
            let (replica, first) = Replica::new(
                cfg,
                node,
                accepted,
                current,
                recent_floor,
                recent.into_iter().collect(),
                now,
            );
            initial_outputs = first;
            Engine::Ensemble(Box::new(replica))
        }
    };
    let mut core = Core::new(
        engine,
        settings.clone(),
        stats.clone(),
        clock,
        storage,
        failed_tx,
    );
    if background_startup_snapshot {
        core.start_snapshot();
    }
    if let Some(q) = &settings.quorum {
        stats.set_role(crate::stats::Role::Looking);
        let shell = start_quorum(q, &settings, tree_cfg_for(&settings)).await?;
        core = core.with_quorum(shell);
        core.routputs_extend(std::mem::take(&mut initial_outputs));
    }
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
        shutdown_rx.clone(),
    ));
    if settings.autopurge_interval_hours > 0 {
        tokio::spawn(autopurge_loop(fs, dirs, settings.clone(), shutdown_rx));
    }
    let mode = if settings.quorum.is_some() {
        "ensemble member"
    } else {
        "standalone"
    };
    tracing::info!(%local_addr, last_zxid = format!("0x{last_zxid:x}"), "corral listening for clients ({mode})");
    Ok(RunningServer {
        local_addr,
        shutdown: shutdown_tx,
        accept,
        core,
        failed: failed_rx,
        log_thread: Some(log_thread),
    })
}

/// The tree settings of `settings` (for recovery, and for each tree a SNAP sync loads).
fn tree_cfg_for(settings: &ServerSettings) -> TreeConfig {
    TreeConfig {
        extended_types_enabled: settings.extended_types_enabled,
        skip_acl: settings.skip_acl,
        super_digest: settings.super_digest.clone(),
    }
}

/// `acceptedEpoch` and `currentEpoch`, created from the log's last zxid when missing (as
/// ZooKeeper does on the first start of a member).
fn read_epochs(fs: &dyn FileSystem, dirs: &DataDirs, last_zxid: i64) -> Result<(i64, i64), String> {
    use corral_storage::epoch;
    let dir = &dirs.snap_dir;
    let current = match epoch::read_current_epoch(fs, dir).map_err(|e| e.to_string())? {
        Some(e) => e,
        None => {
            let e = corral_proto::quorum::epoch_of(last_zxid);
            epoch::write_current_epoch(fs, dir, e).map_err(|e| e.to_string())?;
            e
        }
    };
    let accepted = match epoch::read_accepted_epoch(fs, dir).map_err(|e| e.to_string())? {
        Some(e) => e,
        None => {
            epoch::write_accepted_epoch(fs, dir, current).map_err(|e| e.to_string())?;
            current
        }
    };
    if current > accepted {
        return Err(format!(
            "currentEpoch {current} is above acceptedEpoch {accepted} in {}: the epoch files are inconsistent",
            dir.display()
        ));
    }
    Ok((accepted, current))
}

/// Binds the quorum and election ports and starts their tasks.
async fn start_quorum(
    q: &QuorumSettings,
    settings: &ServerSettings,
    tree_cfg: TreeConfig,
) -> Result<QuorumShell, String> {
    let me = q.me();
    let listener = TcpListener::bind(me.quorum_addr)
        .await
        .map_err(|e| format!("cannot listen on the quorum port {}: {e}", me.quorum_addr))?;
    let peers = q
        .members
        .iter()
        .map(|m| ElectionPeer {
            sid: m.sid,
            election_addr: m.election_addr,
            voter: !m.observer,
        })
        .collect();
    let mut ecfg = ElectionNetConfig::new(
        q.my_sid,
        me.election_addr,
        peers,
        bytes::Bytes::from(q.config_text.clone()),
    );
    // Java waits a fixed 200 ms for a better vote; corral waits at most a tick, so a
    // small tickTime buys a fast failover.
    ecfg.finalize_wait = std::time::Duration::from_millis((settings.tick_ms as u64).clamp(1, 200));
    ecfg.cnx_timeout = std::time::Duration::from_millis(q.cnx_timeout_ms.max(1) as u64);
    let election = ElectionNet::start(ecfg).await.map_err(|e| {
        format!(
            "cannot listen on the election port {}: {e}",
            me.election_addr
        )
    })?;
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(quorum_net::accept_loop(
        listener,
        events_tx.clone(),
        tree_cfg.clone(),
    ));
    tracing::info!(
        sid = q.my_sid,
        quorum = %me.quorum_addr,
        election = %me.election_addr,
        observer = me.observer,
        "ensemble member starting"
    );
    Ok(QuorumShell::new(
        q.clone(),
        Arc::new(election),
        settings.tick_ms,
        tree_cfg,
        events_tx,
        events_rx,
    ))
}

/// `autopurge.purgeInterval`: every that many hours, purge old snapshots and logs.
async fn autopurge_loop(
    fs: Arc<dyn FileSystem>,
    dirs: DataDirs,
    settings: Arc<ServerSettings>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = std::time::Duration::from_secs(settings.autopurge_interval_hours * 3600);
    let retain = settings.autopurge_snap_retain_count;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let (fs, dirs) = (fs.clone(), dirs.clone());
        let _ = tokio::task::spawn_blocking(move || durable::purge_now(fs.as_ref(), &dirs, retain))
            .await;
    }
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

/// Seed of the snapshot trigger's random roll point. The roll point is random so that the
/// members of an ensemble do not roll their logs and snapshot at the same moment (the
/// reason for ZooKeeper's `randRoll`); members started together by one script start
/// within the same millisecond, so the start time alone gave two of three members the same
/// roll points. The process id and server id make each member's draw its own.
fn trigger_seed(wall_nanos: u64, pid: u32, server_id: u8) -> u64 {
    let mut z = wall_nanos ^ (u64::from(pid) << 32) ^ (u64::from(server_id) << 56);
    // SplitMix64's finaliser, so nearby inputs give unrelated seeds.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_started_together_draw_different_roll_points() {
        let a = trigger_seed(1_000_000, 4242, 1);
        assert_ne!(a, trigger_seed(1_000_000, 4242, 2));
        assert_ne!(a, trigger_seed(1_000_000, 4243, 1));
        assert_ne!(a, trigger_seed(1_000_001, 4242, 1));
    }
}
