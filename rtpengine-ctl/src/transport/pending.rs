//! Requests waiting for their reply, keyed by cookie. Shared by the datagram and stream
//! transports, whose reader tasks deliver replies here, or tell the waiting why none
//! will come.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A reply's body, or why none will come.
type Reply = Result<Vec<u8>, Error>;

#[derive(Debug, Default)]
struct Waiting {
    waiters: HashMap<Vec<u8>, oneshot::Sender<Reply>>,
    /// Set by `fail_all`: why no reply will come to anyone from now on.
    failed: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Pending(Arc<Mutex<Waiting>>);

/// Removes the entry when the waiting request ends, whether answered, timed out or dropped.
pub struct Waiter {
    pending: Pending,
    cookie: Vec<u8>,
    rx: oneshot::Receiver<Reply>,
}

impl Pending {
    /// Registers `cookie`; once `fail_all` has run, the waiter fails at once instead.
    pub fn wait(&self, cookie: &[u8]) -> Waiter {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.lock();
        if let Some(reason) = &waiting.failed {
            let _ = tx.send(Err(Error::Lost(reason.clone())));
        } else {
            waiting.waiters.insert(cookie.to_vec(), tx);
        }
        drop(waiting);
        Waiter {
            pending: self.clone(),
            cookie: cookie.to_vec(),
            rx,
        }
    }

    /// Hands a reply to whoever waits for `cookie`; unknown cookies (late retransmission
    /// answers) are dropped.
    pub fn deliver(&self, cookie: &[u8], body: &[u8]) {
        if let Some(tx) = self.lock().waiters.remove(cookie) {
            let _ = tx.send(Ok(body.to_vec()));
        }
    }

    /// Fails everyone waiting at once, and everyone who comes to wait later, with
    /// [`Error::Lost`] and `reason`. Under the same lock as `wait`: no request slips in
    /// between.
    pub fn fail_all(&self, reason: &str) {
        let mut waiting = self.lock();
        waiting.failed = Some(reason.to_owned());
        fail(&mut waiting, || Error::Lost(reason.to_owned()));
    }

    /// Fails everyone waiting now with `error()`; those who come to wait later wait
    /// for their replies as usual.
    pub fn fail_waiting(&self, error: impl Fn() -> Error) {
        fail(&mut self.lock(), error);
    }

    /// Whether replies can still come (`fail_all` has not run).
    pub fn is_open(&self) -> bool {
        self.lock().failed.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Waiter {
    /// The reply, or as soon as none can come, why (for one, [`Error::Lost`] when its
    /// connection goes away).
    pub async fn reply(&mut self) -> Result<Vec<u8>> {
        match (&mut self.rx).await {
            Ok(reply) => reply,
            // Unanswered only when a request under the same cookie took its place.
            Err(_) => Err(Error::Closed),
        }
    }
}

fn fail(waiting: &mut Waiting, error: impl Fn() -> Error) {
    for (_, tx) in waiting.waiters.drain() {
        let _ = tx.send(Err(error()));
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.pending.lock().waiters.remove(&self.cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// A request can register on a stream connection just as its reader fails everyone
    /// waiting (it saw the connection open a moment before): it must fail at once too,
    /// not wait out its whole time for a reply that cannot come.
    #[test]
    fn a_waiter_registered_after_fail_all_fails_at_once() {
        let pending = Pending::default();
        let mut before = pending.wait(b"a1");
        pending.fail_all("the peer closed the connection");
        let mut after = pending.wait(b"a2");
        for waiter in [&mut before, &mut after] {
            match waiter.reply().now_or_never() {
                Some(Err(Error::Lost(why))) => assert_eq!(why, "the peer closed the connection"),
                other => panic!("expected the connection's loss, got {other:?}"),
            }
        }
    }
}
