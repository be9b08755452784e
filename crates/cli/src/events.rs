//! Watch and connection events, printed as zkCli's default watcher prints them.
//!
//! zkCli sets every watch for one watcher object (its default watcher), so the Java client
//! tells it once about each server notification, however many of its watches (data, exist,
//! child, persistent, recursive) the notification matches, and once about each state change.
//! corral-client's [`EventStream`] is that default watcher: the shell starts each session
//! with one and detaches the handle of every watch it sets ([`corral_client::WatchFuture::detach`]),
//! so that the watches stay armed (and are re-armed after reconnects) while their events
//! reach only the stream.
//!
//! One printer task owns the stream of the current session and prints each event as it
//! arrives. [`EventHub::flush`] has it print everything queued: since the client queues a
//! notification before it answers any later request, a flush after a reply prints every
//! event that came before the reply, so a command's output follows the events its request
//! triggered, as in zkCli.
//!
//! Threading: the printer is a tokio task; the [`EventHub`] handle talks to it over a
//! bounded channel.

use crate::console::Console;
use crate::format;
use corral_client::{EventStream, EventType, KeeperState, SessionEvent, SessionState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Requests to the printer waiting to be taken. Senders wait when it is full.
pub const HUB_QUEUE_MAX: usize = 64;

#[derive(Debug)]
enum HubMsg {
    /// Print from this session's stream from now on (after what is left of the last one).
    Attach(EventStream),
    /// Print every queued event, then answer.
    Flush(oneshot::Sender<()>),
}

/// The printer of events; cheap to share by reference.
#[derive(Debug)]
pub struct EventHub {
    tx: mpsc::Sender<HubMsg>,
    print: Arc<AtomicBool>,
}

impl EventHub {
    /// Starts the printer task (inside a tokio runtime). `print` is zkCli's `printwatches`.
    pub fn start(console: Arc<dyn Console>, print: Arc<AtomicBool>) -> EventHub {
        let (tx, rx) = mpsc::channel(HUB_QUEUE_MAX);
        tokio::spawn(printer(rx, console, print.clone()));
        EventHub { tx, print }
    }

    pub fn set_print(&self, on: bool) {
        self.print.store(on, Ordering::SeqCst);
    }

    pub fn printing(&self) -> bool {
        self.print.load(Ordering::SeqCst)
    }

    /// Prints the events of a new session (the previous session's queued events first).
    pub async fn attach(&self, events: EventStream) {
        let _ = self.tx.send(HubMsg::Attach(events)).await;
    }

    /// Returns once every event the client has queued so far has been printed.
    pub async fn flush(&self) {
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

/// The text zkCli prints for an event, if it prints one (failed connection attempts are
/// not events to a Java watcher).
fn text_of(ev: &SessionEvent) -> Option<String> {
    match ev {
        SessionEvent::Watch(w) => Some(format::watcher_lines(w.state, w.event_type, Some(&w.path))),
        SessionEvent::State(s) => {
            keeper_state(*s).map(|k| format::watcher_lines(k, EventType::None, None))
        }
        SessionEvent::ConnectFailed { .. } => None,
    }
}

async fn printer(
    mut rx: mpsc::Receiver<HubMsg>,
    console: Arc<dyn Console>,
    print: Arc<AtomicBool>,
) {
    let show = |ev: SessionEvent| {
        if let Some(text) = text_of(&ev) {
            if print.load(Ordering::SeqCst) {
                console.event(&text);
            }
        }
    };
    let drain = |stream: &mut Option<EventStream>| {
        if let Some(s) = stream {
            while let Some(ev) = s.try_next() {
                show(ev);
            }
        }
    };
    let mut stream: Option<EventStream> = None;
    loop {
        let next = async {
            match stream.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                None => return,
                Some(HubMsg::Attach(s)) => {
                    drain(&mut stream);
                    stream = Some(s);
                }
                Some(HubMsg::Flush(done)) => {
                    drain(&mut stream);
                    let _ = done.send(());
                }
            },
            ev = next => match ev {
                Some(ev) => show(ev),
                None => stream = None, // the session ended and its last event was printed
            },
        }
    }
}
