//! Watch handles given to the application, and the session's event stream.
//!
//! Owns: [`WatchFuture`] (a one-shot watch: resolves with the first event, or with a final
//! session-end event), [`WatchStream`] (a persistent or persistent-recursive watch: yields
//! every event and ends after a session-end or watch-removed event), and [`EventStream`]
//! (every notification and state change of a session once, in arrival order: the Java
//! client's default watcher).
//!
//! A dropped handle unregisters its watch locally (it is not re-armed after a reconnect); a
//! *detached* handle ([`WatchFuture::detach`], [`WatchStream::detach`]) leaves the watch
//! armed, as a Java watch set for the default watcher: its events then reach only the event
//! stream.
//!
//! Invariant: no handle ever hangs after the session ends: the core sends a final event to
//! every watcher on Expired/Closed/AuthFailed, and a vanished driver reads as Closed; the
//! event stream ends after the terminal state's event.

use crate::types::{SessionEvent, WatchedEvent};
use corral_proto::{EventType, KeeperState};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
/// fires; its event then reaches only the event stream).
#[derive(Debug)]
pub struct WatchFuture {
    rx: oneshot::Receiver<WatchedEvent>,
    path: String,
    detached: Arc<AtomicBool>,
}

impl WatchFuture {
    pub(crate) fn new(
        rx: oneshot::Receiver<WatchedEvent>,
        path: String,
        detached: Arc<AtomicBool>,
    ) -> WatchFuture {
        WatchFuture { rx, path, detached }
    }

    /// The (client) path the watch was set on.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Gives up the handle but keeps the watch: it stays registered (re-armed after
    /// reconnects, seen by [`crate::Client::has_local_watch`] and
    /// [`crate::Client::remove_watches`]) until it fires, and its event is seen only on the
    /// client's [`EventStream`]. This is a Java watch set with `watch = true`.
    pub fn detach(self) {
        // Set before the receiver is dropped: the core keeps an entry whose receiver is gone
        // only when this flag is already visible.
        self.detached.store(true, Ordering::Release);
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
    detached: Arc<AtomicBool>,
}

impl WatchStream {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<WatchedEvent>,
        path: String,
        detached: Arc<AtomicBool>,
    ) -> WatchStream {
        WatchStream {
            rx,
            path,
            ended: false,
            detached,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Gives up the handle but keeps the watch armed (see [`WatchFuture::detach`]); its
    /// events are then seen only on the client's [`EventStream`].
    pub fn detach(self) {
        self.detached.store(true, Ordering::Release);
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

/// Every event of one session, once each, in the order the client saw them (see
/// [`SessionEvent`]); from [`crate::ClientOptions::start_with_events`] or
/// [`crate::ClientOptions::connect_with_events`]. Server notifications are delivered before
/// the reply of any later request, so after a reply, [`EventStream::try_next`] returns every
/// event that arrived before it. Dropping the stream stops the delivery.
///
/// Like the Java client's event queue the stream is unbounded: a consumer that stops reading
/// while the session produces events makes it grow.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<SessionEvent>,
}

impl EventStream {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<SessionEvent>) -> EventStream {
        EventStream { rx }
    }

    /// The next event; `None` once the session has ended and its last event was taken.
    pub async fn next(&mut self) -> Option<SessionEvent> {
        self.rx.recv().await
    }

    /// Polling form of [`EventStream::next`], for use with stream adapters.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<SessionEvent>> {
        self.rx.poll_recv(cx)
    }

    /// An event if one is queued.
    pub fn try_next(&mut self) -> Option<SessionEvent> {
        self.rx.try_recv().ok()
    }
}
