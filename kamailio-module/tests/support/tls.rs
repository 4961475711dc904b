//! SIP over TLS on loopback (rustls): a customer's PBX connected to the edge, or a
//! vendor gateway the edge connected to, as [`SipStream`]s; and their certificates,
//! made by testkit's [`TestCa`].

use super::tcp::{self, Carrier, SipStream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};
use std::net::{TcpListener, TcpStream};
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use warp_testkit::TestCa;

/// A customer's end of a TLS connection to the edge.
pub type TlsClient = SipStream<StreamOwned<ClientConnection, TcpStream>>;
/// A vendor's end of a TLS connection from the edge.
pub type TlsServer = SipStream<StreamOwned<ServerConnection, TcpStream>>;

impl Carrier for StreamOwned<ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

impl Carrier for StreamOwned<ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A CA of its own and what it signs (testkit's [`TestCa`]): a certificate for
/// 127.0.0.1 (a TLS server's, the edge's or a vendor's) and one for a customer's PBX
/// (mutual TLS). PEM files.
pub struct Pki(TestCa);

impl Deref for Pki {
    type Target = TestCa;

    fn deref(&self) -> &TestCa {
        &self.0
    }
}

impl Pki {
    /// Makes them, the CA's subject naming `name`.
    pub fn make(name: &str) -> Pki {
        Pki(TestCa::make(name).expect("make a test CA with openssl"))
    }

    /// A TLS connection to the edge's TLS socket at 127.0.0.1:`port`, the edge's
    /// certificate checked against this CA; presenting this PKI's client certificate
    /// when `client_cert`.
    pub fn connect(&self, port: u16, client_cert: bool) -> TlsClient {
        self.connect_from("127.0.0.1", port, client_cert)
    }

    /// As [`Pki::connect`], from the loopback address `source` (what the edge sees as
    /// its source address).
    pub fn connect_from(&self, source: &str, port: u16, client_cert: bool) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certificates(&self.ca).remove(0)).unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if client_cert {
            config
                .with_client_auth_cert(certificates(&self.client_cert), key(&self.client_key))
                .unwrap()
        } else {
            config.with_no_client_auth()
        };
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let connection = ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = tcp::connect_from(source, port);
        SipStream::new(StreamOwned::new(connection, tcp))
    }

    /// The next TLS connection the edge opens to `listener`, answered with this PKI's
    /// server certificate.
    pub fn accept(&self, listener: &TcpListener) -> TlsServer {
        self.accept_within(listener, tcp::WAIT)
    }

    /// As [`Pki::accept`], within `wait`.
    pub fn accept_within(&self, listener: &TcpListener, wait: Duration) -> TlsServer {
        let connection = ServerConnection::new(self.server_config()).unwrap();
        SipStream::new(StreamOwned::new(
            connection,
            tcp::accept_within(listener, wait),
        ))
    }

    /// A TLS server presenting this PKI's certificate for 127.0.0.1.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates(&self.server_cert), key(&self.server_key))
            .unwrap();
        Arc::new(config)
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(file: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(file: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(file).unwrap()
}
