//! The Redis every WARP service shares (warp-api, `warp pull`, the rtpengine proxy, as
//! warp.so does): `WARP_REDIS_URL`, `redis://…` or `rediss://…` (Redis over TLS, a
//! managed Redis or one on another host), and for the latter `WARP_REDIS_CA`, the CAs
//! the server's certificate must chain to. One function makes the client, so every
//! service reads them alike and refuses a bad one at start with the same words.

use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::path::Path;

/// The CAs a `rediss://` server's certificate is checked against when `WARP_REDIS_CA`
/// is unset: the system's (Debian's bundle), as warp.so's `redis_ca` defaults to.
pub const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why the shared Redis cannot be used as configured; passwords masked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("WARP_REDIS_URL: {url:?} is not a Redis URL: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
    /// `file` says which file, and whether WARP_REDIS_CA named it.
    #[error("{file} {why}: the CAs the certificate of {url:?} must chain to")]
    Ca {
        file: String,
        why: String,
        url: String,
    },
}

/// A client for `url`. For `rediss://` the server's certificate is checked against the
/// CA certificates (PEM) in `ca`, the system's when `None`; the file is read now, once,
/// and one that is missing, unreadable or holds no certificate is an error. A
/// `redis://` URL never reads it.
pub fn client(url: &str, ca: Option<&Path>) -> Result<redis::Client, Error> {
    let masked = || warp_redact::mask_password(url);
    let plain = redis::Client::open(url).map_err(|source| Error::Url {
        url: masked(),
        source,
    })?;
    let tls = matches!(
        plain.get_connection_info().addr(),
        redis::ConnectionAddr::TcpTls { .. }
    );
    if !tls {
        return Ok(plain);
    }
    let path = ca.unwrap_or(Path::new(SYSTEM_CAS));
    let refused = |why: String| Error::Ca {
        file: match ca {
            Some(_) => format!("WARP_REDIS_CA: {path:?}"),
            None => format!("WARP_REDIS_CA is unset, and the system's CAs {path:?}"),
        },
        why,
        url: masked(),
    };
    let pem = std::fs::read(path).map_err(|e| refused(format!("cannot be read ({e})")))?;
    // The redis crate would take a file of no certificate as a CA list that trusts
    // nobody, and fail only at each connection.
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refused(format!("is not PEM ({e})")))?;
    if certificates.is_empty() {
        return Err(refused("holds no PEM certificate".into()));
    }
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(url, certificates)
        .map_err(|e| refused(format!("is refused ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const URL: &str = "rediss://:s3cret@127.0.0.1:6380/";

    fn refusal(url: &str, ca: Option<&Path>) -> String {
        let e = client(url, ca).expect_err("refused").to_string();
        assert!(!e.contains("s3cret"), "{e}");
        e
    }

    #[test]
    fn a_plain_url_never_reads_the_ca() {
        let missing = Path::new("/nonexistent/ca.pem");
        let c = client("redis://:s3cret@127.0.0.1:6379/", Some(missing)).unwrap();
        assert!(matches!(
            c.get_connection_info().addr(),
            redis::ConnectionAddr::Tcp(..)
        ));
    }

    #[test]
    fn a_tls_url_takes_the_system_cas_when_none_is_named() {
        let c = client(URL, None).unwrap();
        assert!(matches!(
            c.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ));
    }

    #[test]
    fn a_ca_file_missing_empty_or_of_no_certificate_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = refusal(URL, Some(&missing));
        assert!(e.starts_with("WARP_REDIS_CA: "), "{e}");
        assert!(e.contains("missing.pem\" cannot be read"), "{e}");
        assert!(e.contains("rediss://:***@127.0.0.1:6380/"), "{e}");

        let empty = dir.path().join("empty.pem");
        std::fs::File::create(&empty).unwrap();
        let e = refusal(URL, Some(&empty));
        assert!(e.contains("empty.pem\" holds no PEM certificate"), "{e}");

        let key_only = dir.path().join("key.pem");
        writeln!(
            std::fs::File::create(&key_only).unwrap(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
        )
        .unwrap();
        let e = refusal(URL, Some(&key_only));
        assert!(e.contains("key.pem\" holds no PEM certificate"), "{e}");

        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!\n").unwrap();
        let e = refusal(URL, Some(&broken));
        assert!(e.contains("broken.pem\" is not PEM"), "{e}");
    }

    #[test]
    fn a_url_that_is_no_redis_url_is_refused_masked() {
        let e = refusal("http://:s3cret@cache:6379", None);
        assert!(
            e.starts_with("WARP_REDIS_URL: \"http://:***@cache:6379\""),
            "{e}"
        );
    }
}
