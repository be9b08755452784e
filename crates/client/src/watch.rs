//! Watch handles given to the application.
//!
//! Owns: [`WatchFuture`] (a one-shot watch: resolves with the first event, or with a final
//! session-end event) and [`WatchStream`] (a persistent or persistent-recursive watch: yields
//! every event and ends after a session-end or watch-removed event).
//!
//! Invariant: neither ever hangs after the session ends: the core sends a final event to every
//! watcher on Expired/Closed/AuthFailed, and a vanished driver reads as Closed.

use crate::types::WatchedEvent;
use corral_proto::{EventType, KeeperState};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

fn closed_event(path: &str) -> WatchedEvent {
    WatchedEvent {
        event_type: EventType::None,
        state: KeeperState::Closed,
        path: path.to_owned(),
        zxid: -1,
    }
}

/// A one-shot watch. Dropping it unregisters it locally (the server-side watch stays until it
/// fires; its event is then discarded).
#[derive(Debug)]
pub struct WatchFuture {
    rx: oneshot::Receiver<WatchedEvent>,
    path: String,
}

impl WatchFuture {
    pub(crate) fn new(rx: oneshot::Receiver<WatchedEvent>, path: String) -> WatchFuture {
        WatchFuture { rx, path }
    }

    /// The (client) path the watch was set on.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The event if it has fired already.
    pub fn try_take(&mut self) -> Option<WatchedEvent> {
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(closed_event(&self.path)),
        }
    }
}

impl Future for WatchFuture {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(Ok(e)) => Poll::Ready(e),
            Poll::Ready(Err(_)) => Poll::Ready(closed_event(&this.path)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A persistent (or persistent-recursive) watch. Dropping it unregisters it locally; call
/// [`crate::Client::remove_watches`] to remove it on the server too.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
    path: String,
    ended: bool,
}

impl WatchStream {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<WatchedEvent>, path: String) -> WatchStream {
        WatchStream {
            rx,
            path,
            ended: false,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn filter(&mut self, e: Option<WatchedEvent>) -> Option<WatchedEvent> {
        match e {
            Some(e) => {
                if e.is_session_end() || e.event_type == EventType::PersistentWatchRemoved {
                    self.ended = true;
                    self.rx.close();
                }
                Some(e)
            }
            None => {
                self.ended = true;
                None
            }
        }
    }

    /// The next event; `None` once the watch has ended (after its final event).
    pub async fn next(&mut self) -> Option<WatchedEvent> {
        if self.ended {
            return None;
        }
        let e = self.rx.recv().await;
        self.filter(e)
    }

    /// Polling form of [`WatchStream::next`], for use with stream adapters.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(e) => Poll::Ready(self.filter(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// An event if one is queued.
    pub fn try_next(&mut self) -> Option<WatchedEvent> {
        if self.ended {
            return None;
        }
        match self.rx.try_recv() {
            Ok(e) => self.filter(Some(e)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => self.filter(None),
        }
    }
}
