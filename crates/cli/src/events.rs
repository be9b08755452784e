//! Watch and connection events, printed as zkCli's default watcher prints them.
//!
//! zkCli registers one watcher object for everything, so the Java client delivers each server
//! notification to it once, however many of its watches (data, exist, child, persistent,
//! recursive) the notification matches, and the shell prints it once. corral-client gives a
//! separate handle per watch instead; this module merges them back:
//!
//! * every watch handle gets a small forwarding task that sends `(source, event)` into one
//!   bounded queue; one printer task drains it;
//! * the forwarding tasks of one notification are woken together, in the order the client
//!   dispatched it, and run before the printer (the shell runs on a current-thread runtime,
//!   whose run queue is FIFO), so they arrive as one batch;
//! * within a batch, an event equal to an earlier one (state, type, path) from a *different*
//!   source is the same notification seen by another watch and is not printed again; the
//!   same source sending it twice means two notifications, both printed. A batch ends when
//!   the queue is empty.
//!
//! Session-end events of watch handles (type None) are dropped: the connection-state task
//! reports state changes, once, from the client's state channel.
//!
//! [`EventHub::flush`] waits until every event that reached the client before now has been
//! printed, so a command's output follows the events its request triggered, as in zkCli.

use crate::console::Console;
use crate::format;
use corral_client::{EventType, KeeperState, SessionState, WatchFuture, WatchStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Events and flush requests waiting for the printer. Forwarding tasks wait when it is full.
pub const EVENT_QUEUE_MAX: usize = 4096;

/// Source id of the connection-state task (watch sources count up from 1).
const STATE_SOURCE: u64 = 0;

#[derive(Debug)]
enum HubMsg {
    Event {
        source: u64,
        state: KeeperState,
        event_type: EventType,
        path: Option<String>,
    },
    Flush(oneshot::Sender<()>),
}

/// The printer of events; cheap to share by reference.
#[derive(Debug)]
pub struct EventHub {
    tx: mpsc::Sender<HubMsg>,
    next_source: AtomicU64,
    print: Arc<AtomicBool>,
}

impl EventHub {
    /// Starts the printer task (inside a tokio runtime). `print` is zkCli's `printwatches`.
    pub fn start(console: Arc<dyn Console>, print: Arc<AtomicBool>) -> EventHub {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE_MAX);
        tokio::spawn(printer(rx, console, print.clone()));
        EventHub {
            tx,
            next_source: AtomicU64::new(STATE_SOURCE + 1),
            print,
        }
    }

    pub fn set_print(&self, on: bool) {
        self.print.store(on, Ordering::SeqCst);
    }

    pub fn printing(&self) -> bool {
        self.print.load(Ordering::SeqCst)
    }

    fn source(&self) -> u64 {
        self.next_source.fetch_add(1, Ordering::Relaxed)
    }

    /// Prints the event of a one-shot watch when it fires.
    pub fn watch_future(&self, fut: WatchFuture) {
        let tx = self.tx.clone();
        let source = self.source();
        tokio::spawn(async move {
            let ev = fut.await;
            if !ev.is_session_end() {
                let _ = tx
                    .send(HubMsg::Event {
                        source,
                        state: ev.state,
                        event_type: ev.event_type,
                        path: Some(ev.path),
                    })
                    .await;
            }
        });
    }

    /// Prints every event of a persistent (recursive) watch until it ends.
    pub fn watch_stream(&self, mut stream: WatchStream) {
        let tx = self.tx.clone();
        let source = self.source();
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                if ev.is_session_end() {
                    break;
                }
                let msg = HubMsg::Event {
                    source,
                    state: ev.state,
                    event_type: ev.event_type,
                    path: Some(ev.path),
                };
                if tx.send(msg).await.is_err() {
                    break;
                }
                // One event per wake-up keeps notifications of different watches in the
                // order the client dispatched them.
                tokio::task::yield_now().await;
            }
        });
    }

    /// Prints the connection-state events of a session (`SyncConnected`, `Disconnected`,
    /// `Expired`, `AuthFailed`, `Closed`) until it ends.
    pub fn watch_state(&self, mut rx: watch::Receiver<SessionState>) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut last = *rx.borrow_and_update();
            let send = |state: KeeperState| HubMsg::Event {
                source: STATE_SOURCE,
                state,
                event_type: EventType::None,
                path: None,
            };
            if let Some(k) = keeper_state(last) {
                let _ = tx.send(send(k)).await;
            }
            while rx.changed().await.is_ok() {
                let now = *rx.borrow_and_update();
                // The core only publishes transitions: seeing the same connected state again
                // means a disconnect and reconnect happened in between.
                if now == last && now.is_connected() {
                    let _ = tx.send(send(KeeperState::Disconnected)).await;
                }
                if let Some(k) = keeper_state(now) {
                    let _ = tx.send(send(k)).await;
                }
                last = now;
                if now.is_terminal() {
                    break;
                }
            }
        });
    }

    /// Returns once every event that reached the client so far has been printed.
    pub async fn flush(&self) {
        // Let the forwarding tasks woken by the client run first (FIFO run queue).
        for _ in 0..2 {
            tokio::task::yield_now().await;
        }
        let (tx, rx) = oneshot::channel();
        if self.tx.send(HubMsg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The event zkCli's watcher sees when the session enters `s` (none for Connecting).
fn keeper_state(s: SessionState) -> Option<KeeperState> {
    match s {
        SessionState::Connecting => None,
        SessionState::Connected => Some(KeeperState::SyncConnected),
        SessionState::ConnectedReadOnly => Some(KeeperState::ConnectedReadOnly),
        SessionState::Disconnected => Some(KeeperState::Disconnected),
        SessionState::Expired => Some(KeeperState::Expired),
        SessionState::Closed => Some(KeeperState::Closed),
        SessionState::AuthFailed => Some(KeeperState::AuthFailed),
    }
}

/// One printed event of the current batch and the sources that reported it.
struct Seen {
    state: KeeperState,
    event_type: EventType,
    path: Option<String>,
    sources: Vec<u64>,
}

async fn printer(
    mut rx: mpsc::Receiver<HubMsg>,
    console: Arc<dyn Console>,
    print: Arc<AtomicBool>,
) {
    let mut batch: Vec<Seen> = Vec::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            HubMsg::Flush(done) => {
                let _ = done.send(());
            }
            HubMsg::Event {
                source,
                state,
                event_type,
                path,
            } => {
                let same =
                    |s: &Seen| s.state == state && s.event_type == event_type && s.path == path;
                if let Some(seen) = batch
                    .iter_mut()
                    .find(|s| same(s) && !s.sources.contains(&source))
                {
                    seen.sources.push(source);
                } else {
                    if print.load(Ordering::SeqCst) {
                        console.event(&format::watcher_lines(state, event_type, path.as_deref()));
                    }
                    batch.push(Seen {
                        state,
                        event_type,
                        path,
                        sources: vec![source],
                    });
                }
            }
        }
        if rx.is_empty() {
            batch.clear();
        }
    }
}
