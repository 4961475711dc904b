//! Requests waiting for their reply, keyed by cookie. Shared by the datagram and stream
//! transports, whose reader tasks deliver replies here.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A reply's body, or why the connection it was awaited on went away.
type Reply = Result<Vec<u8>, String>;

type Waiting = HashMap<Vec<u8>, oneshot::Sender<Reply>>;

#[derive(Debug, Default, Clone)]
pub struct Pending(Arc<Mutex<Waiting>>);

/// Removes the entry when the waiting request ends, whether answered, timed out or dropped.
pub struct Waiter {
    pending: Pending,
    cookie: Vec<u8>,
    rx: oneshot::Receiver<Reply>,
}

impl Pending {
    pub fn wait(&self, cookie: &[u8]) -> Waiter {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(cookie.to_vec(), tx);
        Waiter {
            pending: self.clone(),
            cookie: cookie.to_vec(),
            rx,
        }
    }

    /// Hands a reply to whoever waits for `cookie`; unknown cookies (late retransmission
    /// answers) are dropped.
    pub fn deliver(&self, cookie: &[u8], body: &[u8]) {
        if let Some(tx) = self.lock().remove(cookie) {
            let _ = tx.send(Ok(body.to_vec()));
        }
    }

    /// Fails everyone waiting at once, telling them why.
    pub fn fail_all(&self, reason: &str) {
        for (_, tx) in self.lock().drain() {
            let _ = tx.send(Err(reason.to_owned()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Waiter {
    /// The reply, or [`Error::Lost`] as soon as its connection goes away.
    pub async fn reply(&mut self) -> Result<Vec<u8>> {
        match (&mut self.rx).await {
            Ok(reply) => reply.map_err(Error::Lost),
            // Unanswered only when a request under the same cookie took its place.
            Err(_) => Err(Error::Closed),
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.cookie);
    }
}
