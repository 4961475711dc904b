//! Requests waiting for their reply, keyed by cookie. Shared by the datagram and stream
//! transports, whose reader tasks deliver replies here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type Waiting = HashMap<Vec<u8>, oneshot::Sender<Vec<u8>>>;

#[derive(Debug, Default, Clone)]
pub struct Pending(Arc<Mutex<Waiting>>);

/// Removes the entry when the waiting request ends, whether answered, timed out or dropped.
pub struct Waiter<'a> {
    pending: &'a Pending,
    cookie: Vec<u8>,
    pub rx: oneshot::Receiver<Vec<u8>>,
}

impl Pending {
    pub fn wait(&self, cookie: &[u8]) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(cookie.to_vec(), tx);
        Waiter {
            pending: self,
            cookie: cookie.to_vec(),
            rx,
        }
    }

    /// Hands a reply to whoever waits for `cookie`; unknown cookies (late retransmission
    /// answers) are dropped.
    pub fn deliver(&self, cookie: &[u8], body: &[u8]) {
        if let Some(tx) = self.lock().remove(cookie) {
            let _ = tx.send(body.to_vec());
        }
    }

    /// Fails everyone waiting (their receivers see the sender dropped).
    pub fn fail_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.cookie);
    }
}
