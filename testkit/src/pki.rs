//! A CA of a test's own and a server certificate it signed for 127.0.0.1, made with the
//! openssl CLI in a temp dir: what a TLS server under test presents and what its
//! clients are told to trust (or, a second CA, not to).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// A certificate for `IP:127.0.0.1` signed by the CA, and its key (PEM).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA whose subject is `name CA`, and its server certificate.
    pub fn make(name: &str) -> io::Result<TestCa> {
        let dir = tempfile::tempdir()?;
        let file = |what: &str| dir.path().join(format!("{what}.pem"));
        let (ca_key, request, extensions) = (file("ca-key"), file("server-csr"), file("ext"));
        let (ca, server_cert, server_key) = (file("ca"), file("server"), file("server-key"));
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
        openssl(
            &["req", "-new"],
            &p256,
            &[
                ("-subj", Path::new("/CN=127.0.0.1")),
                ("-keyout", &server_key),
                ("-out", &request),
            ],
        )?;
        std::fs::write(
            &extensions,
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[],
            &[
                ("-in", &request),
                ("-CA", &ca),
                ("-CAkey", &ca_key),
                ("-extfile", &extensions),
                ("-out", &server_cert),
            ],
        )?;
        Ok(TestCa {
            ca,
            server_cert,
            server_key,
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
