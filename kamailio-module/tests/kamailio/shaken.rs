//! STIR/SHAKEN signing on the shipped config (WITH_STIR_SHAKEN): the edge, the
//! originating provider of the calls its customers' PBXs send (47 CFR 64.6301), gives an
//! INVITE that came unsigned an Identity header (RFC 8224), a PASSporT (ATIS-1000074)
//! over the calling and dialled numbers, once per call. Each test takes apart the
//! Identity the vendor got and verifies its signature with the certificate's key.

use super::{no_redis, shipped_config, start_shipped, Routing};
use crate::support::dataset::{Data, DNO_ANI};
use crate::support::udp::{final_reply, raw_request, raw_socket, send_raw};
use crate::support::vendor::{Plays, Vendor};
use crate::support::Kamailio;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::process::Command;
use warp_testkit::TestCa;

/// Where verifiers would fetch the edge's certificate (STIR_X5U).
pub(super) const X5U: &str = "https://cert.warp.test/shaken/sp.pem";

/// The calling number of most calls here, and the same number as a PASSporT names it.
pub(super) const PAI: &str = "P-Asserted-Identity: <sip:+17205550199@127.0.0.1>\r\n";
pub(super) const ORIG_TN: &str = "17205550199";

/// The carrier's signing key and certificate: [`TestCa`]'s server certificate, on an EC
/// P-256 key, as an STI-CA would issue one.
pub(super) struct Signer {
    ca: TestCa,
    /// The certificate's public key, the uncompressed point ring verifies with.
    public_key: Vec<u8>,
}

impl Signer {
    pub(super) fn new() -> Signer {
        let ca = TestCa::make("STI").unwrap();
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(&ca.server_cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let pem = String::from_utf8(out.stdout).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let spki = STANDARD.decode(b64).unwrap();
        // A P-256 SubjectPublicKeyInfo: 26 bytes of algorithm and curve, then the point.
        assert_eq!((spki.len(), spki[26]), (91, 4), "{pem}");
        Signer {
            public_key: spki[26..].to_vec(),
            ca,
        }
    }

    /// The shipped config's defines for signing with this key, `more` after them.
    pub(super) fn defines(&self, more: &[&str]) -> Vec<String> {
        let mut defines = vec![
            "WITH_STIR_SHAKEN".to_string(),
            format!("STIR_KEY=\"{}\"", self.ca.server_key.display()),
            format!("STIR_X5U=\"{X5U}\""),
        ];
        defines.extend(more.iter().map(|d| d.to_string()));
        defines
    }

    /// The signing key's file (STIR_KEY).
    pub(super) fn key(&self) -> &std::path::Path {
        &self.ca.server_key
    }

    /// Asserts that `identity`, an Identity header's value, is a SHAKEN PASSporT this
    /// key signed just now, attesting `attest` for a call from `orig` to `dest`; its
    /// claims.
    pub(super) fn assert_signed(
        &self,
        identity: &str,
        attest: &str,
        (orig, dest): (&str, &str),
    ) -> Value {
        let (token, params) = identity.split_once(';').unwrap();
        assert_eq!(
            params,
            format!("info=<{X5U}>;alg=ES256;ppt=shaken"),
            "{identity}"
        );
        let parts: Vec<&str> = token.split('.').collect();
        let [header, claims, _] = parts[..] else {
            panic!("no JWS: {identity}");
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).unwrap();
        let json = |part: &str| -> Value { serde_json::from_slice(&decode(part)).unwrap() };
        assert_eq!(
            json(header),
            json!({"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": X5U})
        );
        let claimed = json(claims);
        assert_eq!(claimed["attest"], attest, "{claimed}");
        assert_eq!(claimed["orig"], json!({ "tn": orig }), "{claimed}");
        assert_eq!(claimed["dest"], json!({ "tn": [dest] }), "{claimed}");
        let now = chrono::Utc::now().timestamp();
        let iat = claimed["iat"].as_i64().unwrap();
        assert!((now - 10..=now).contains(&iat), "iat {iat}, now {now}");
        let origid = claimed["origid"].as_str().unwrap();
        let groups: Vec<usize> = origid.split('-').map(str::len).collect();
        let hex = origid.chars().all(|c| c == '-' || c.is_ascii_hexdigit());
        assert!(groups == [8, 4, 4, 4, 12] && hex, "origid {origid}");
        self.assert_verifies(token);
        claimed
    }

    /// Asserts that `token`, a JWS (header.claims.signature), is this key's ES256
    /// signature (RFC 7518 3.4: P-256 and SHA-256 over "header.claims", r || s).
    pub(super) fn assert_verifies(&self, token: &str) {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &self.public_key,
        );
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        key.verify(signed.as_bytes(), &signature)
            .unwrap_or_else(|_| panic!("signature does not verify: {token}"));
    }

    /// A JWS of `header` and `claims` signed with this key (ES256), as a carrier's
    /// authentication service makes one.
    pub(super) fn sign(&self, header: &Value, claims: &Value) -> String {
        // ring reads PKCS#8; TestCa writes SEC1.
        let out = Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&self.ca.server_key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, &out.stdout, &rng).unwrap();
        let encode = |json: &Value| URL_SAFE_NO_PAD.encode(json.to_string());
        let signed = format!("{}.{}", encode(header), encode(claims));
        let signature = key.sign(&rng, signed.as_bytes()).unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The Identity header lines of a request, in full or compact form (`y`), as they came.
pub(super) fn identity_lines(request: &str) -> Vec<&str> {
    request
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let name = l.split(':').next().unwrap_or_default().trim();
            name.eq_ignore_ascii_case("identity") || name.eq_ignore_ascii_case("y")
        })
        .collect()
}

/// The value of the one Identity header `request` carries.
pub(super) fn the_identity(request: &str) -> &str {
    let lines = identity_lines(request);
    assert_eq!(lines.len(), 1, "{request}");
    lines[0].split_once(':').unwrap().1.trim()
}

/// A call the edge routes to `vendor`: its INVITE as the vendor got it.
pub(super) fn invite_reaching(k: &Kamailio, vendor: &Vendor, dnis: &str, headers: &str) -> String {
    let before = vendor.received("INVITE").len();
    let reply = k.request_to("127.0.0.1", dnis, "INVITE", headers);
    assert_eq!(reply.code, 200, "{}", k.log());
    let invites = vendor.received("INVITE");
    assert_eq!(invites.len(), before + 1, "{}", k.log());
    invites[before].clone()
}

/// An unsigned call from a customer trunk reaches the vendor signed, attested B by
/// default: its PASSporT names the calling and dialled numbers in E.164 digits whatever
/// format the caller wrote them in, the edge's certificate URL, and the time it was
/// signed, and verifies with the certificate's key. The shipped config signs nothing
/// unless WITH_STIR_SHAKEN asks.
#[test]
fn the_shipped_config_signs_an_unsigned_call_from_a_customer_trunk() {
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &signer.defines(&[]));
    let calls = [
        (PAI, "12125550123", ORIG_TN),
        (
            "P-Asserted-Identity: <tel:+1-720-555-0199>\r\n",
            "2125550123",
            ORIG_TN,
        ),
        // No PAI: the From's 10 digits, 3035550100.
        ("", "+12125550123", "13035550100"),
    ];
    for (headers, dnis, orig) in calls {
        let invite = invite_reaching(&k, &vendor, dnis, headers);
        signer.assert_signed(the_identity(&invite), "B", (orig, "12125550123"));
    }
    drop(k);

    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let invite = invite_reaching(&k, &vendor, "12125550123", PAI);
    assert_eq!(identity_lines(&invite), Vec::<&str>::new(), "{invite}");
}

/// A call that came with an Identity (its originating carrier signed it) reaches the
/// vendor with that one alone, as it came, in full or compact form: the edge adds none.
#[test]
fn the_shipped_config_passes_a_signed_call_on_without_signing_it_again() {
    // Another carrier's PASSporT (the edge verifies none): header, claims, signature.
    let theirs = "eyJhbGciOiJFUzI1NiIsInBwdCI6InNoYWtlbiIsInR5cCI6InBhc3Nwb3J0In0.\
                  eyJhdHRlc3QiOiJBIn0.c2lnbmVkIGJ5IGFub3RoZXIgY2Fycmllcg\
                  ;info=<https://cert.example.org/sp.pem>;alg=ES256;ppt=shaken";
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &signer.defines(&[]));
    for name in ["Identity", "y"] {
        let line = format!("{name}: {theirs}");
        let invite = invite_reaching(&k, &vendor, "12125550123", &format!("{PAI}{line}\r\n"));
        assert_eq!(identity_lines(&invite), [line.as_str()], "{invite}");
    }
    assert!(!k.log().contains("signed (STIR/SHAKEN)"), "{}", k.log());
    // The same caller unsigned: signed.
    let invite = invite_reaching(&k, &vendor, "12125550123", PAI);
    signer.assert_signed(the_identity(&invite), "B", (ORIG_TN, "12125550123"));
}

/// A call failed over from a vendor's 503 to the next reaches each with one Identity,
/// the same: signed once, with the attestation STIR_ATTEST gives, over the number the
/// caller dialled (not the first vendor's dialstring, a tech prefix before the number).
#[test]
fn the_shipped_config_signs_a_call_once_whichever_vendors_it_reaches() {
    signs_a_call_once_whichever_vendors_it_reaches(&Routing::direct());
}

/// As [`the_shipped_config_signs_a_call_once_whichever_vendors_it_reaches`], for a call
/// dipped in an async worker: its failover branches are made in the failure route
/// again, the Identity with them. Signed over the number dialled, not its LRN.
#[test]
fn the_shipped_config_signs_a_call_once_whichever_vendors_it_reaches_after_the_dip() {
    signs_a_call_once_whichever_vendors_it_reaches(&Routing::dipped());
}

fn signs_a_call_once_whichever_vendors_it_reaches(routing: &Routing) {
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        dialled_as: ("1234#{national}", "+{number}"),
        ..Data::with_gateways()
    };
    let cheap = Vendor::start(data.cheap.0, Plays::Unavailable);
    let dear = Vendor::start(data.dear.0, Plays::Answers);
    let defines = routing.defines(&signer.defines(&["STIR_ATTEST=\"A\""]));
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let invite = invite_reaching(&k, &dear, routing.number(), PAI);
    routing.took(&k, 1);
    let refused = cheap.received("INVITE");
    assert_eq!(refused.len(), 1, "{}", k.log());
    let dialstring = format!("INVITE sip:1234#{}@", &routing.number()[2..]);
    assert!(refused[0].starts_with(&dialstring), "{}", refused[0]);
    let identity = the_identity(&invite);
    assert_eq!(the_identity(&refused[0]), identity);
    signer.assert_signed(identity, "A", (ORIG_TN, &routing.number()[1..]));
    assert_eq!(k.log().matches("signed (STIR/SHAKEN)").count(), 1);
}

/// Nothing is signed for a call the edge refuses (a DNO'd caller's, one to a number the
/// customer has no route to), nor for one without a calling number (anonymous, no
/// P-Asserted-Identity): a PASSporT's orig is a telephone number, so that one reaches
/// the vendor unsigned (logged). The trunk's next call is signed.
#[test]
fn the_shipped_config_signs_no_refused_call_and_no_call_without_a_calling_number() {
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &signer.defines(&[]));
    let dno = format!("P-Asserted-Identity: <tel:{DNO_ANI}>\r\n");
    let refused = [
        (dno.as_str(), "12125550123", 403),
        (PAI, "011442079460000", 404),
    ];
    for (headers, dnis, code) in refused {
        let reply = k.request_to("127.0.0.1", dnis, "INVITE", headers);
        assert_eq!(reply.code, code, "{}", k.log());
    }
    assert!(vendor.received("INVITE").is_empty());
    assert!(!k.log().contains("signed (STIR/SHAKEN)"), "{}", k.log());

    let (sock, lport) = raw_socket();
    let anonymous = raw_request(k.port, lport, "INVITE", "12125550123", "anon").replace(
        "From: <sip:3035550100@127.0.0.1>",
        "From: \"Anonymous\" <sip:anonymous@anonymous.invalid>",
    );
    send_raw(&sock, &k, &anonymous);
    assert_eq!(final_reply(&sock, &k, "anon").code, 200, "{}", k.log());
    let invites = vendor.received("INVITE");
    assert_eq!(
        identity_lines(&invites[0]),
        Vec::<&str>::new(),
        "{}",
        invites[0]
    );
    let unsigned =
        format!("anon-{lport} from trunk T1 goes unsigned: no calling or dialled number");
    assert!(k.log().contains(&unsigned), "{}", k.log());

    let invite = invite_reaching(&k, &vendor, "12125550123", PAI);
    signer.assert_signed(the_identity(&invite), "B", (ORIG_TN, "12125550123"));
    assert_eq!(k.log().matches("signed (STIR/SHAKEN)").count(), 1);
}

/// A key the edge cannot sign with (a STIR_KEY that names no file) leaves the call
/// unsigned, logged, rather than refused: an unattested call may still complete.
#[test]
fn the_shipped_config_sends_a_call_on_unsigned_when_its_key_cannot_sign() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data::with_gateways();
    let vendor = Vendor::start(data.cheap.0, Plays::Answers);
    let defines = [
        "WITH_STIR_SHAKEN".to_string(),
        format!("STIR_KEY=\"{}\"", dir.path().join("missing.pem").display()),
        format!("STIR_X5U=\"{X5U}\""),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let invite = invite_reaching(&k, &vendor, "12125550123", PAI);
    assert_eq!(identity_lines(&invite), Vec::<&str>::new(), "{invite}");
    let unsigned = "from trunk T1 goes unsigned: STIR_KEY did not sign (libsecsipid -";
    assert!(k.log().contains(unsigned), "{}", k.log());
}

/// WITH_STIR_SHAKEN without the key or the certificate's URL: every call's signing
/// would fail, so the edge refuses to start, naming the define it lacks.
#[test]
fn the_shipped_config_refuses_stir_shaken_without_its_key_or_certificate_url() {
    let signer = Signer::new();
    let with = signer.defines(&[]);
    for (left_out, named) in [
        (1, "STIR_KEY_is_required_with_WITH_STIR_SHAKEN"),
        (2, "STIR_X5U_is_required_with_WITH_STIR_SHAKEN"),
    ] {
        let mut defines = with.clone();
        defines.remove(left_out);
        let log = Kamailio::refused_file(&shipped_config(), &defines);
        assert!(log.contains(named), "{log}");
    }
}
