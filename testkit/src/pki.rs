//! A CA of a test's own and the certificates it signed, made with the openssl CLI in a
//! temp dir: what a TLS server under test presents (for 127.0.0.1), what a client
//! presents for mutual TLS, and what both are told to trust (or, a second CA, not to).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// A certificate for `IP:127.0.0.1` signed by the CA, and its key (PEM); good for
    /// client authentication too (a proxy presents it as a client to its next hop).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate (`CN=pbx`) signed by the CA, and its key (PEM).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA whose subject is `name CA`, and its server and client certificates.
    pub fn make(name: &str) -> io::Result<TestCa> {
        let dir = tempfile::tempdir()?;
        let file = |what: &str| dir.path().join(format!("{what}.pem"));
        let (ca, ca_key) = (file("ca"), file("ca-key"));
        let p256 = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &["req", "-x509", "-days", "2"],
            &p256,
            &[
                ("-subj", Path::new(&format!("/CN={name} CA"))),
                ("-keyout", &ca_key),
                ("-out", &ca),
            ],
        )?;
        // A key and a certificate for `cn`, signed by the CA with `extensions`.
        let sign = |what: &str, cn: &str, extensions: &str| -> io::Result<(PathBuf, PathBuf)> {
            let (cert, key) = (file(what), file(&format!("{what}-key")));
            let (request, ext) = (file(&format!("{what}-csr")), file(&format!("{what}-ext")));
            openssl(
                &["req", "-new"],
                &p256,
                &[
                    ("-subj", Path::new(&format!("/CN={cn}"))),
                    ("-keyout", &key),
                    ("-out", &request),
                ],
            )?;
            std::fs::write(&ext, extensions)?;
            openssl(
                &["x509", "-req", "-days", "2", "-CAcreateserial"],
                &[],
                &[
                    ("-in", &request),
                    ("-CA", &ca),
                    ("-CAkey", &ca_key),
                    ("-extfile", &ext),
                    ("-out", &cert),
                ],
            )?;
            Ok((cert, key))
        };
        let (server_cert, server_key) = sign(
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        )?;
        let (client_cert, client_key) = sign("client", "pbx", "extendedKeyUsage=clientAuth\n")?;
        Ok(TestCa {
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
            _dir: dir,
        })
    }
}

/// `openssl` with its command, key options and named arguments; its stderr when it fails.
fn openssl(command: &[&str], key: &[&str], named: &[(&str, &Path)]) -> io::Result<()> {
    let mut openssl = Command::new("openssl");
    openssl.args(command).args(key);
    for (name, value) in named {
        openssl.arg(name).arg(value);
    }
    let out = openssl.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
