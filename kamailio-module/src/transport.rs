//! The connection an HTTP or a Redis exchange runs on: TCP, or TLS over it (rustls, TLS
//! 1.2 and 1.3, the server's certificate checked against the CAs of one PEM file and for
//! the URL's host), every socket operation of it — connect, each step of the TLS
//! handshake, each write and read — bounded by what is left of a deadline.
//!
//! The TLS client configuration is built once, at start-up, before Kamailio forks: it
//! holds no file descriptor (certificates, the crypto provider, an in-memory session
//! cache no process touches before the fork), so each process works on its own copy.

use crate::endpoint::Endpoint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One exchange's budget: every step gets what is left of it.
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    pub fn left(&self) -> Result<Duration, String> {
        self.remaining().ok_or_else(|| self.passed())
    }

    pub fn passed(&self) -> String {
        format!("timed out after {} ms", self.timeout.as_millis())
    }

    fn remaining(&self) -> Option<Duration> {
        self.at
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

/// A client configuration trusting only the CA certificates in the PEM file `ca`, which
/// the module parameter `param` names (for the error).
pub fn trusting(param: &str, ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let unusable = |why: String| format!("{param} {}: {why}", ca.display());
    let certificates = CertificateDer::pem_file_iter(ca)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unusable(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (usable, _) = roots.add_parsable_certificates(certificates);
    if usable == 0 {
        return Err(unusable("no CA certificate in it".into()));
    }
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|config| Arc::new(config.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| e.to_string())
}

/// TLS to one server: the name its certificate must be valid for (an IP literal is
/// checked as an IP address) and what it is checked against.
#[derive(Clone)]
pub struct Tls {
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl Tls {
    pub fn new(host: &str, config: Arc<ClientConfig>) -> Result<Tls, String> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{host:?} is no name a certificate can be checked for"))?;
        Ok(Tls { name, config })
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tls").field(&self.name).finish()
    }
}

/// An open connection: TCP, or a TLS session (its handshake done) over it.
pub struct Connection {
    tcp: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

impl Connection {
    /// Connects to `endpoint` and, with `tls`, completes the handshake, within `deadline`.
    pub fn open(
        endpoint: &Endpoint,
        tls: Option<&Tls>,
        deadline: &Deadline,
    ) -> Result<Connection, String> {
        Connection::connect(endpoint, deadline)?.secure(tls, deadline)
    }

    /// A plain TCP connection to `endpoint`, within `deadline`.
    pub fn connect(endpoint: &Endpoint, deadline: &Deadline) -> Result<Connection, String> {
        let tcp = endpoint.connect(deadline.left()?)?;
        // Each user writes a whole request, then waits for its answer: Nagle would only
        // hold back its last segment (and a TLS record's) for the server's delayed ACK.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Connection { tcp, tls: None })
    }

    /// The connection with, given `tls`, a TLS session over it, its handshake done
    /// within `deadline`.
    pub fn secure(mut self, tls: Option<&Tls>, deadline: &Deadline) -> Result<Connection, String> {
        if let Some(tls) = tls {
            let handshake =
                |e: String| format!("TLS handshake with {} failed: {e}", tls.name.to_str());
            let session = ClientConnection::new(tls.config.clone(), tls.name.clone())
                .map_err(|e| handshake(e.to_string()))?;
            let session = self.tls.insert(Box::new(session));
            let mut socket = Timed {
                tcp: &self.tcp,
                deadline,
            };
            // Until it is done or failed (a certificate refused, garbage, EOF, the deadline).
            while session.is_handshaking() {
                session.complete_io(&mut socket).map_err(|e| {
                    handshake(match e.kind() {
                        ErrorKind::WouldBlock | ErrorKind::TimedOut => deadline.passed(),
                        _ => e.to_string(),
                    })
                })?;
            }
        }
        Ok(self)
    }

    /// Whether the server closed the connection since its last exchange, or sent what
    /// nobody asked for (it would be read as the next answer): asked without waiting,
    /// before an idle connection is used again. Over TLS, what came meanwhile is taken
    /// into the session first: a close_notify or the TCP connection's end is a close,
    /// the session tickets a TLS 1.3 server sends after its handshake are not.
    pub fn closed(&mut self) -> bool {
        let Some(session) = self.tls.as_deref_mut() else {
            let mut byte = [0u8];
            return !matches!(
                recv_now(&self.tcp, &mut byte, libc::MSG_PEEK),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
            );
        };
        let mut socket = Unwaiting(&self.tcp);
        loop {
            match session.process_new_packets() {
                Ok(state) if !state.peer_has_closed() && state.plaintext_bytes_to_read() == 0 => {}
                _ => return true,
            }
            match session.read_tls(&mut socket) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) => {
                    return !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
                }
            }
        }
    }

    /// The connection as a byte stream whose every socket operation ends by `deadline`
    /// (then failing `WouldBlock` or `TimedOut`).
    pub fn within<'a>(&'a mut self, deadline: &'a Deadline) -> Bounded<'a> {
        Bounded {
            connection: self,
            deadline,
        }
    }
}

pub struct Bounded<'a> {
    connection: &'a mut Connection,
    deadline: &'a Deadline,
}

impl Bounded<'_> {
    /// `op` on the plain stream, or on the TLS session over it.
    fn on<T>(&mut self, op: impl FnOnce(&mut dyn ReadWrite) -> io::Result<T>) -> io::Result<T> {
        let mut socket = Timed {
            tcp: &self.connection.tcp,
            deadline: self.deadline,
        };
        match self.connection.tls.as_deref_mut() {
            None => op(&mut socket),
            Some(session) => op(&mut rustls::Stream::new(session, &mut socket)),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Read for Bounded<'_> {
    /// `Ok(0)`: the server closed the connection (a TLS one with `close_notify`; without
    /// it, `UnexpectedEof`).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.on(|stream| stream.read(buf))
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.on(|stream| stream.write(buf))
    }

    /// Sends what TLS holds back (a TLS write's own socket error surfaces here).
    fn flush(&mut self) -> io::Result<()> {
        self.on(|stream| stream.flush())
    }
}

/// The TCP socket, each read and write given what is left of the deadline.
struct Timed<'a> {
    tcp: &'a TcpStream,
    deadline: &'a Deadline,
}

impl Timed<'_> {
    fn left(&self) -> io::Result<Duration> {
        self.deadline
            .remaining()
            .ok_or_else(|| ErrorKind::TimedOut.into())
    }
}

/// The TCP socket read without waiting: what has arrived, else `WouldBlock`.
struct Unwaiting<'a>(&'a TcpStream);

impl Read for Unwaiting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self.0, buf, 0)
    }
}

/// `recv(2)` on `tcp` with `flags`, without waiting whatever its read timeout.
fn recv_now(tcp: &TcpStream, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: writes at most `buf.len()` bytes into `buf`, from the socket `tcp` owns.
    let read = unsafe {
        libc::recv(
            tcp.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(read).map_err(|_| io::Error::last_os_error())
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.left()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.left()?))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let missing = trusting("lrn_dip_ca", Path::new("/nowhere/ca.pem")).unwrap_err();
        assert!(
            missing.starts_with("lrn_dip_ca /nowhere/ca.pem: ") && missing.contains("No such file"),
            "{missing}"
        );
        let empty = tempfile::NamedTempFile::new().unwrap();
        let refused = trusting("redis_ca", empty.path()).unwrap_err();
        assert!(
            refused.starts_with("redis_ca ") && refused.ends_with("no CA certificate in it"),
            "{refused}"
        );
    }
}
