//! TCP: ng messages follow each other with no delimiter, so the reader finds each reply's
//! end by scanning its bencode. One connection, opened lazily and reopened after a failure.
//! rtpengine 10.5 does not answer JSON over TCP, so this transport is bencode only, and
//! a body that is not exactly one bencode value is refused before it goes out.

use super::pending::{Pending, Waiter};
use super::{timeout_error, AbortOnDrop, Options, MAX_MESSAGE};
use crate::bencode;
use crate::error::{Error, Result};
use crate::message::{self, Format};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

#[derive(Debug)]
pub struct Tcp {
    peer: SocketAddr,
    options: Options,
    conn: Mutex<Option<Conn>>,
}

/// One connection and the requests waiting on it: they are its own, so when it goes
/// they fail at once, and a later connection's requests are left alone.
#[derive(Debug)]
struct Conn {
    writer: OwnedWriteHalf,
    /// Closed by the reader when the connection goes away.
    pending: Pending,
    _reader: AbortOnDrop,
}

impl Drop for Conn {
    /// Dropped with requests on it only after a write failed or was cut short, its
    /// reader aborted: nothing else would tell them that no reply will come.
    fn drop(&mut self) {
        self.pending
            .fail_all("the connection was dropped after a write on it failed or was cut short");
    }
}

impl Tcp {
    pub fn new(peer: SocketAddr, options: Options) -> Tcp {
        Tcp {
            peer,
            options,
            conn: Mutex::new(None),
        }
    }

    pub async fn exchange(&self, cookie: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        // rtpengine cuts its stream by bencode: a body that is not exactly one value
        // is never answered and stalls the connection (JSON, one cut short), or its
        // extra bytes become the next request's cookie, whose reply then finds no one.
        if Format::detect(body) == Some(Format::Json) {
            return Err(Error::Config(
                "rtpengine does not answer JSON over TCP; use UDP or HTTP".into(),
            ));
        }
        if !matches!(bencode::value_len(body), Ok(Some(n)) if n == body.len()) {
            return Err(Error::Config(
                "over TCP the body must be exactly one bencode value".into(),
            ));
        }
        let started = Instant::now();
        let budget = self.options.total();
        let mut waiter = tokio::time::timeout(budget, self.send(cookie, body))
            .await
            .map_err(|_| timeout_error(1, started))??;
        tokio::time::timeout(budget.saturating_sub(started.elapsed()), waiter.reply())
            .await
            .map_err(|_| timeout_error(1, started))?
    }

    /// Writes the request and returns its waiter, registered on the connection it went
    /// out on before the write, so that no reply can come before it.
    async fn send(&self, cookie: &[u8], body: &[u8]) -> Result<Waiter> {
        let mut slot = self.conn.lock().await;
        // Out of its slot while writing: a write cut short (the budget ran out, the
        // caller gave up) drops the connection instead of leaving half a message for
        // the next request to be appended to.
        let mut conn = match slot.take() {
            Some(c) if c.pending.is_open() => c,
            _ => self.open().await?,
        };
        let waiter = conn.pending.wait(cookie);
        conn.writer.write_all(&message::frame(cookie, body)).await?;
        *slot = Some(conn);
        Ok(waiter)
    }

    async fn open(&self) -> Result<Conn> {
        let stream = TcpStream::connect(self.peer).await?;
        stream.set_nodelay(true)?;
        let (mut reader, writer) = stream.into_split();
        let pending = Pending::default();
        let waiting = pending.clone();
        let task = tokio::spawn(async move {
            let mut stream = Stream::default();
            let outcome = loop {
                match reader.read_buf(&mut stream.buf).await {
                    Ok(0) => break Ok(()),
                    Ok(_) => {
                        if let Err(e) = stream.deliver_complete(&waiting) {
                            break Err(e);
                        }
                    }
                    Err(e) => break Err(e.into()),
                }
            };
            let reason = match outcome {
                Ok(()) => "the peer closed the connection".to_owned(),
                Err(e) => {
                    tracing::warn!("ng tcp stream broken: {e}");
                    e.to_string()
                }
            };
            waiting.fail_all(&reason);
        });
        Ok(Conn {
            writer,
            pending,
            _reader: AbortOnDrop(task),
        })
    }
}

/// The bytes read and not yet delivered, and how far the message at their front has
/// been checked: each read resumes the scan instead of starting it over.
#[derive(Debug, Default)]
struct Stream {
    buf: Vec<u8>,
    partial: Partial,
}

#[derive(Debug, Default)]
struct Partial {
    /// Where the bencode starts, once the cookie's space has arrived.
    body_at: Option<usize>,
    scanner: bencode::Scanner,
}

impl Stream {
    /// Delivers every complete message at the front of the buffer and keeps the rest.
    fn deliver_complete(&mut self, pending: &Pending) -> Result<()> {
        let mut start = 0;
        while let Some(len) = self.partial.len(&self.buf[start..])? {
            let (cookie, body) = message::split(&self.buf[start..start + len])?;
            pending.deliver(cookie, body);
            start += len;
            self.partial = Partial::default();
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_MESSAGE {
            return Err(Error::Frame("ng message over 16 MiB"));
        }
        Ok(())
    }
}

impl Partial {
    /// Length of `cookie SP bencode` at the front of `input`, if it is all there.
    fn len(&mut self, input: &[u8]) -> Result<Option<usize>> {
        let body_at = match self.body_at {
            Some(at) => at,
            None => match input.iter().position(|&b| b == b' ') {
                Some(space) => *self.body_at.insert(space + 1),
                None if input.len() > 256 => {
                    return Err(Error::Frame("no cookie delimiter in stream"))
                }
                None => return Ok(None),
            },
        };
        Ok(self.scanner.scan(&input[body_at..])?.map(|n| body_at + n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn splits_pipelined_replies_and_keeps_partial_tail() {
        let pending = Pending::default();
        let mut a = pending.wait(b"a1");
        let mut b = pending.wait(b"a2");
        let mut stream = Stream::default();
        let wire = b"a1 d6:result4:pongea2 d6:result4:ponge";
        let mut feed = |piece: &[u8]| {
            stream.buf.extend_from_slice(piece);
            stream.deliver_complete(&pending).unwrap();
        };
        // The first reply and one byte of the second's cookie.
        feed(&wire[..20]);
        assert_eq!(
            a.reply().now_or_never().unwrap().unwrap(),
            b"d6:result4:ponge"
        );
        // Up to the middle of the second's bencode: nothing yet.
        feed(&wire[20..30]);
        assert!(b.reply().now_or_never().is_none());
        feed(&wire[30..]);
        assert_eq!(
            b.reply().now_or_never().unwrap().unwrap(),
            b"d6:result4:ponge"
        );
        assert!(stream.buf.is_empty());
    }
}
