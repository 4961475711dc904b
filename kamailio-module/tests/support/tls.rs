//! SIP over TLS on loopback (rustls): a customer's PBX connected to the edge, or a
//! vendor gateway the edge connected to, as [`SipStream`]s; and their certificates,
//! made with the openssl CLI.

use super::tcp::{self, Carrier, SipStream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

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

/// A CA of its own and what it signs: a certificate for 127.0.0.1 (a TLS server's, the
/// edge's or a vendor's) and one for a customer's PBX (mutual TLS). PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// Makes them in `dir`, their file names starting with `name`.
    pub fn make(dir: &Path, name: &str) -> Pki {
        let file = |what: &str| dir.join(format!("{name}-{what}.pem"));
        let pki = Pki {
            ca: file("ca"),
            server_cert: file("server"),
            server_key: file("server-key"),
            client_cert: file("client"),
            client_key: file("client-key"),
        };
        let ca_key = file("ca-key");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} CA"),
            "-keyout",
            path(&ca_key),
            "-out",
            path(&pki.ca),
        ]);
        let sign = |cert: &Path, key: &Path, cn: &str, extensions: &str| {
            let request = dir.join(format!("{name}-{cn}.csr"));
            let ext = dir.join(format!("{name}-{cn}.ext"));
            std::fs::write(&ext, extensions).unwrap();
            openssl(&[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                path(key),
                "-out",
                path(&request),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                path(&request),
                "-CA",
                path(&pki.ca),
                "-CAkey",
                path(&ca_key),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                path(&ext),
                "-out",
                path(cert),
            ]);
        };
        sign(
            &pki.server_cert,
            &pki.server_key,
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        sign(
            &pki.client_cert,
            &pki.client_key,
            "pbx",
            "extendedKeyUsage=clientAuth\n",
        );
        pki
    }

    /// A TLS connection to the edge's TLS socket at 127.0.0.1:`port`, the edge's
    /// certificate checked against this CA; presenting this PKI's client certificate
    /// when `client_cert`.
    pub fn connect(&self, port: u16, client_cert: bool) -> TlsClient {
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
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to the edge");
        SipStream::new(StreamOwned::new(connection, tcp))
    }

    /// The next TLS connection the edge opens to `listener`, answered with this PKI's
    /// server certificate.
    pub fn accept(&self, listener: &TcpListener) -> TlsServer {
        let connection = ServerConnection::new(self.server_config()).unwrap();
        SipStream::new(StreamOwned::new(connection, tcp::accept(listener)))
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

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
