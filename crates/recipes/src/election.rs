//! Leader election: [`LeaderLatch`] (hold leadership until closed) and [`LeaderSelector`]
//! (lead, run a task, give leadership up).
//!
//! Owns: one `_c_<guid>-latch-<seq>` ephemeral-sequential node per participant under the
//! election directory; the node's data is the participant id.
//!
//! Guarantee: the participant with the lowest sequence number leads. A participant reports
//! leadership only while its client is *connected*: on Disconnected it steps down at once
//! (within 2/3 of the session timeout of losing the server, before the server can expire
//! the session and hand leadership to the next one), so two participants never both report
//! leadership, provided clocks run at similar rates. Each participant watches only its
//! predecessor (no herd). Leadership passes in the order participants joined.

use crate::lock::Mutex;
use crate::{create_protected, delete_quietly, new_guid, retry, sort_by_sequence};
use corral_client::connect_string::{basename, join};
use corral_client::{Client, CreateMode, Error, Result, SessionState};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// A participant in an election that keeps leadership until it closes.
#[derive(Debug)]
pub struct LeaderLatch {
    client: Client,
    leader_rx: watch::Receiver<bool>,
    node_rx: watch::Receiver<Option<String>>,
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl LeaderLatch {
    /// Joins the election in `dir` as `id`. Leadership is then tracked in the background.
    pub async fn start(client: &Client, dir: &str, id: &str) -> Result<LeaderLatch> {
        let guid = new_guid();
        let path = create_protected(
            client,
            dir,
            &guid,
            "latch-",
            id.as_bytes(),
            CreateMode::EphemeralSequential,
        )
        .await?;
        let (leader_tx, leader_rx) = watch::channel(false);
        let (node_tx, node_rx) = watch::channel(Some(path.clone()));
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run_latch(
            client.clone(),
            dir.to_owned(),
            path,
            leader_tx,
            node_tx,
            stop.clone(),
        ));
        Ok(LeaderLatch {
            client: client.clone(),
            leader_rx,
            node_rx,
            stop,
            task,
        })
    }

    /// Whether this participant leads now.
    pub fn is_leader(&self) -> bool {
        *self.leader_rx.borrow()
    }

    /// A receiver of leadership changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader_rx.clone()
    }

    /// Our election node.
    pub fn node(&self) -> Option<String> {
        self.node_rx.borrow().clone()
    }

    /// Waits until this participant leads, at most `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> bool {
        let mut rx = self.leader_rx.clone();
        tokio::time::timeout(timeout, rx.wait_for(|l| *l))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Leaves the election (deletes our node; the next participant takes over).
    pub async fn close(self) -> Result<()> {
        self.stop.notify_one();
        let node = self.node_rx.borrow().clone();
        let r = self.task.await;
        if let Some(n) = node {
            if !self.client.state().is_terminal() {
                delete_quietly(&self.client, &n).await?;
            }
        }
        match r {
            Ok(r) => r,
            Err(e) => Err(Error::Protocol(format!("latch task failed: {e}"))),
        }
    }

    /// The id of the current leader of `dir`, if any.
    pub async fn leader_id(client: &Client, dir: &str) -> Result<Option<String>> {
        Ok(Mutex::holder_data(client, dir)
            .await?
            .map(|d| String::from_utf8_lossy(&d).into_owned()))
    }
}

async fn run_latch(
    client: Client,
    dir: String,
    mut path: String,
    leader_tx: watch::Sender<bool>,
    node_tx: watch::Sender<Option<String>>,
    stop: Arc<Notify>,
) -> Result<()> {
    let mut state = client.state_watcher();
    let id = client
        .get_data(&path)
        .await
        .map(|(d, _)| d)
        .unwrap_or_default();
    loop {
        let s = *state.borrow_and_update();
        if s.is_terminal() {
            leader_tx.send_replace(false);
            node_tx.send_replace(None);
            return Ok(());
        }
        if !s.is_connected() {
            // Suspended: we might lose the session any moment; step down now.
            leader_tx.send_replace(false);
            tokio::select! {
                _ = stop.notified() => return Ok(()),
                _ = state.changed() => continue,
            }
        }
        let kids = retry(&client, || client.get_children(&dir)).await;
        let mut kids = match kids {
            Ok(k) => k,
            Err(e) if e.is_outcome_unknown() => continue,
            Err(e) if e.is_session_terminal() => continue,
            Err(e) => {
                leader_tx.send_replace(false);
                return Err(e);
            }
        };
        sort_by_sequence(&mut kids);
        let me = basename(&path).to_owned();
        let Some(idx) = kids.iter().position(|k| *k == me) else {
            // Our node vanished with the session still alive (deleted by someone): rejoin.
            leader_tx.send_replace(false);
            match create_protected(
                &client,
                &dir,
                &new_guid(),
                "latch-",
                &id,
                CreateMode::EphemeralSequential,
            )
            .await
            {
                Ok(p) => {
                    path = p;
                    node_tx.send_replace(Some(path.clone()));
                    continue;
                }
                Err(e) if e.is_session_terminal() || e.is_outcome_unknown() => continue,
                Err(e) => return Err(e),
            }
        };
        if idx == 0 {
            leader_tx.send_replace(true);
            tokio::select! {
                _ = stop.notified() => {
                    leader_tx.send_replace(false);
                    return Ok(());
                }
                _ = state.changed() => continue,
            }
        }
        leader_tx.send_replace(false);
        let pred = join(&dir, &kids[idx - 1]);
        let w = match client.exists_w(&pred).await {
            Ok((Some(_), w)) => w,
            Ok((None, _)) => continue,
            Err(_) => continue,
        };
        tokio::select! {
            _ = stop.notified() => return Ok(()),
            _ = w => {}
            _ = state.changed() => {}
        }
    }
}

/// Leadership handed to a [`LeaderSelector`] task: tells it when leadership may be gone.
#[derive(Debug, Clone)]
pub struct Leadership {
    state: watch::Receiver<SessionState>,
}

impl Leadership {
    /// Whether the session is still connected (leadership is certain only then).
    pub fn is_valid(&self) -> bool {
        self.state.borrow().is_connected()
    }

    /// Resolves when the client disconnects or the session ends: the task should stop
    /// acting as leader.
    pub async fn lost(&mut self) {
        let _ = self.state.wait_for(|s| !s.is_connected()).await;
    }
}

/// Runs tasks as leader: waits for leadership, runs the task, then gives leadership up so the
/// next participant leads (Curator's `LeaderSelector`).
#[derive(Debug, Clone)]
pub struct LeaderSelector {
    client: Client,
    dir: String,
    id: String,
}

impl LeaderSelector {
    pub fn new(client: &Client, dir: &str, id: &str) -> LeaderSelector {
        LeaderSelector {
            client: client.clone(),
            dir: dir.to_owned(),
            id: id.to_owned(),
        }
    }

    /// Waits for leadership, runs `task`, then relinquishes. Returns the task's output.
    pub async fn lead_once<T, F, Fut>(&self, task: F) -> Result<T>
    where
        F: FnOnce(Leadership) -> Fut,
        Fut: Future<Output = T>,
    {
        let mut m = Mutex::new(&self.client, &self.dir).data(self.id.as_bytes());
        m.acquire().await?;
        let out = task(Leadership {
            state: self.client.state_watcher(),
        })
        .await;
        m.release().await?;
        Ok(out)
    }

    /// The id of the current leader, if any.
    pub async fn leader_id(&self) -> Result<Option<String>> {
        LeaderLatch::leader_id(&self.client, &self.dir).await
    }
}
