//! Where the shell's text goes. zkCli writes results to stdout and most errors (and
//! `Created /x`) to stderr, and prints watch events from another thread at any time; a
//! [`Console`] keeps those three kinds of text apart so that the interactive shell can print
//! events above the prompt and tests can capture everything in order.
//!
//! Threading: a console is shared (`Arc`) between the shell task and the event printer; each
//! call writes one whole piece of text, so pieces never interleave mid-line.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A sink for the shell's output. Each call carries complete text (with its newlines).
pub trait Console: Send + Sync {
    /// `System.out.print(text)`.
    fn out(&self, text: &str);
    /// `System.err.print(text)`.
    fn err(&self, text: &str);
    /// Text printed by the watcher thread (to stdout), possibly while a prompt is shown.
    fn event(&self, text: &str) {
        self.out(text);
    }
}

/// The process's stdout and stderr. Write errors (a closed pipe) are ignored, as Java's
/// `PrintStream` does.
#[derive(Debug, Default)]
pub struct StdConsole;

impl Console for StdConsole {
    fn out(&self, text: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
    fn err(&self, text: &str) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text.as_bytes());
        let _ = e.flush();
    }
}

/// Which stream a captured piece of text went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
    Event,
}

/// Records every piece of text in order (for tests and for embedding the shell).
#[derive(Debug, Default, Clone)]
pub struct CaptureConsole {
    pieces: Arc<Mutex<Vec<(Stream, String)>>>,
}

impl CaptureConsole {
    pub fn new() -> CaptureConsole {
        CaptureConsole::default()
    }

    /// Everything so far, as `2>&1` would show it.
    pub fn merged(&self) -> String {
        self.lock().iter().map(|(_, t)| t.as_str()).collect()
    }

    /// Only the text sent to one stream.
    pub fn stream(&self, which: Stream) -> String {
        self.lock()
            .iter()
            .filter(|(s, _)| *s == which)
            .map(|(_, t)| t.as_str())
            .collect()
    }

    /// Takes everything recorded so far.
    pub fn take(&self) -> Vec<(Stream, String)> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Stream, String)>> {
        // A panic while holding the lock leaves plain text behind: still usable.
        self.pieces.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, s: Stream, text: &str) {
        self.lock().push((s, text.to_owned()));
    }
}

impl Console for CaptureConsole {
    fn out(&self, text: &str) {
        self.push(Stream::Out, text);
    }
    fn err(&self, text: &str) {
        self.push(Stream::Err, text);
    }
    fn event(&self, text: &str) {
        self.push(Stream::Event, text);
    }
}
