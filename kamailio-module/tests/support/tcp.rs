//! A SIP peer over TCP on loopback: a customer's switch connected to the edge, or a
//! vendor gateway the edge connected to; over TLS too (see `support::tls`). Messages
//! are framed by their Content-Length (RFC 3261 18.3).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long [`SipStream::next`] waits for a message.
const WAIT: Duration = Duration::from_secs(8);

/// What a SIP connection's bytes go over: TCP itself, or TLS over it.
pub trait Carrier: Read + Write {
    /// The TCP connection underneath.
    fn tcp(&self) -> &TcpStream;
}

impl Carrier for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

pub struct SipStream<S: Carrier = TcpStream> {
    stream: S,
    /// Bytes read past the last whole message.
    pending: Vec<u8>,
}

impl SipStream {
    /// A connection to the edge at 127.0.0.1:`port`.
    pub fn connect(port: u16) -> SipStream {
        Self::new(TcpStream::connect(("127.0.0.1", port)).expect("connect to the edge"))
    }

    /// The next connection the edge opens to `listener`, within [`WAIT`].
    pub fn accept(listener: &TcpListener) -> SipStream {
        Self::new(accept(listener))
    }
}

/// The next TCP connection the edge opens to `listener`, within [`WAIT`].
pub fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("no connection from the edge: {e}"),
        }
    }
}

impl<S: Carrier> SipStream<S> {
    pub fn new(stream: S) -> SipStream<S> {
        stream.tcp().set_read_timeout(Some(WAIT)).unwrap();
        SipStream {
            stream,
            pending: Vec::new(),
        }
    }

    /// The connection's own port (what the edge sees as its source port).
    pub fn local_port(&self) -> u16 {
        self.stream.tcp().local_addr().unwrap().port()
    }

    pub fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next whole message (keepalive CRLFs skipped), or the error of waiting
    /// for it; `UnexpectedEof` when the edge closed the connection.
    pub fn next(&mut self) -> io::Result<String> {
        loop {
            while self.pending.starts_with(b"\r\n") {
                self.pending.drain(..2);
            }
            if let Some(len) = whole_message(&self.pending) {
                let message = self.pending.drain(..len).collect::<Vec<u8>>();
                return Ok(String::from_utf8_lossy(&message).into_owned());
            }
            let mut buf = [0u8; 65535];
            match self.stream.read(&mut buf)? {
                0 => return Err(ErrorKind::UnexpectedEof.into()),
                n => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Whether the edge closes the connection within `wait` (anything it sends
    /// meanwhile is read and dropped).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        let tick = Some(Duration::from_millis(100));
        self.stream.tcp().set_read_timeout(tick).unwrap();
        let mut closed = false;
        while !closed && Instant::now() < end {
            closed = matches!(
                self.next().map_err(|e| e.kind()),
                Err(ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset)
            );
        }
        self.stream.tcp().set_read_timeout(Some(WAIT)).unwrap();
        closed
    }
}

/// The length of the whole message at the start of `bytes`, if it is all there.
fn whole_message(bytes: &[u8]) -> Option<usize> {
    let head = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&bytes[..head]);
    let body: usize = text
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (bytes.len() >= head + body).then_some(head + body)
}
