//! A SIP peer over TCP on loopback: a customer's switch connected to the edge, or a
//! vendor gateway the edge connected to; over TLS too (see `support::tls`). Messages
//! are framed by their Content-Length (RFC 3261 18.3).

use socket2::{Domain, Socket, Type};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long [`SipStream::next`] waits for a message.
pub const WAIT: Duration = Duration::from_secs(8);

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

    /// A connection to the edge at 127.0.0.1:`port` from the loopback address `source`
    /// (what the edge sees as its source address).
    pub fn connect_from(source: &str, port: u16) -> SipStream {
        Self::new(connect_from(source, port))
    }

    /// The next connection the edge opens to `listener`, within [`WAIT`].
    pub fn accept(listener: &TcpListener) -> SipStream {
        Self::new(accept(listener))
    }

    /// The next connection the edge opens to `listener`, within `wait`.
    pub fn accept_within(listener: &TcpListener, wait: Duration) -> SipStream {
        Self::new(accept_within(listener, wait))
    }
}

/// A TCP connection to the edge at 127.0.0.1:`port` from the loopback address `source`.
pub fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = (source.parse::<IpAddr>().unwrap(), 0).into();
    socket.bind(&local.into()).unwrap();
    let edge: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&edge.into()).expect("connect to the edge");
    socket.into()
}

/// The next TCP connection the edge opens to `listener`, within [`WAIT`].
pub fn accept(listener: &TcpListener) -> TcpStream {
    accept_within(listener, WAIT)
}

/// The next TCP connection the edge opens to `listener`, within `wait`.
pub fn accept_within(listener: &TcpListener, wait: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + wait;
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

    /// As [`SipStream::next`], waiting `wait` rather than [`WAIT`].
    pub fn next_within(&mut self, wait: Duration) -> io::Result<String> {
        self.stream.tcp().set_read_timeout(Some(wait)).unwrap();
        let next = self.next();
        self.stream.tcp().set_read_timeout(Some(WAIT)).unwrap();
        next
    }

    /// Closes the connection with a reset (RST, SO_LINGER 0) rather than a FIN, as a
    /// peer's stack does when the peer crashed or its NAT forgot the connection.
    pub fn reset(self) {
        socket2::SockRef::from(self.stream.tcp())
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }

    /// Whether the edge closes the connection within `wait` (anything it sends
    /// meanwhile is read and dropped).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        let tick = Duration::from_millis(100);
        let mut closed = false;
        while !closed && Instant::now() < end {
            closed = matches!(
                self.next_within(tick).map_err(|e| e.kind()),
                Err(ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset)
            );
        }
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
