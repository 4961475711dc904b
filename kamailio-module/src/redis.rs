//! A minimal blocking Redis client: connect (AUTH, SELECT), pipelined XADD (the CDR
//! sender thread), GET and SET EX (the LNP cache), INCRBY + EXPIRE (cluster-wide CPS),
//! EVAL and pipelines (cluster-wide concurrent calls), each bounded by a
//! timeout. A general client (and an async runtime) has no place inside a Kamailio
//! worker process.

use crate::endpoint::{self, Endpoint};
use crate::transport::{self, Deadline, Tls};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// The longest reply line or bulk string read: every reply these commands get is a few
/// dozen bytes (an LRN, a stream id, a count), so more is a broken or hostile peer.
const MAX_REPLY: usize = 64 * 1024;
/// What one read from the connection asks for: a batch's replies, a few kB, at once.
const READ_CHUNK: usize = 16 * 1024;

/// `redis_url`, parsed and resolved in `mod_init`: a resolver lookup has no deadline, so
/// none is made later, in a SIP worker.
static TARGET: OnceLock<Target> = OnceLock::new();

/// Parses and resolves `url` (once), reading `ca` (`redis_ca`) for a `rediss://` one;
/// `mod_init` only.
pub fn init(url: &str, ca: &Path) -> Result<(), String> {
    if TARGET.get().is_none() {
        let _ = TARGET.set(Target::parse(url, ca)?);
    }
    Ok(())
}

/// The Redis `redis_url` names, as resolved at start-up.
pub fn target() -> Result<&'static Target, String> {
    TARGET
        .get()
        .ok_or_else(|| "redis_url not resolved".to_owned())
}

/// Where and how to connect, from `redis[s]://[[user]:password@]host[:port][/db]`.
pub struct Target {
    endpoint: Endpoint,
    /// For `rediss://`: the server's certificate checked for the URL's host.
    tls: Option<Tls>,
    user: Option<String>,
    password: Option<String>,
    db: u32,
}

impl Target {
    /// Parses `url` and resolves its host; for `rediss://`, reads the CA certificates of
    /// the PEM file `ca` its server's certificate must chain to.
    pub fn parse(url: &str, ca: &Path) -> Result<Target, String> {
        let shown = warp_redact::mask_password(url);
        let url = Url::parse(url).ok_or_else(|| {
            format!(
                "redis_url {shown:?} is not redis://[[user]:password@]host[:port][/db] \
                 (rediss:// over TLS)"
            )
        })?;
        let tls = match url.tls {
            true => {
                let trust = transport::trusting("redis_ca", ca).map_err(|e| {
                    format!("redis_url {shown:?}: its server cannot be checked: {e}")
                })?;
                Some(Tls::new(url.host, trust)?)
            }
            false => None,
        };
        Ok(Target {
            endpoint: Endpoint::resolve(url.host, url.port)
                .map_err(|e| format!("redis_url {shown:?}: {e}"))?,
            tls,
            user: url.user,
            password: url.password,
            db: url.db,
        })
    }
}

/// The parts of `redis[s]://[[user]:password@]host[:port][/db]`, the userinfo decoded.
#[derive(Debug, PartialEq, Eq)]
struct Url<'u> {
    tls: bool,
    /// An IPv6 literal without its brackets.
    host: &'u str,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    db: u32,
}

impl<'u> Url<'u> {
    fn parse(url: &'u str) -> Option<Url<'u>> {
        // Redis's TLS port has no default of its own: 6379 for both, as Redis has.
        let (tls, rest) = match url.strip_prefix("rediss://") {
            Some(rest) => (true, rest),
            None => (false, url.strip_prefix("redis://")?),
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = endpoint::split(hostport, 6379)?;
        let (user, password) = match auth.map(|a| a.split_once(':')) {
            None => (None, None),
            Some(None) => (None, auth),
            Some(Some((u, p))) => (Some(u), Some(p)),
        };
        // As the `redis` crate (the API, rtpengine-ctl) reads the same URL: userinfo
        // percent-decoded, and an empty password (`redis://:${UNSET}@host`) no AUTH.
        let decoded = |part: Option<&str>| match part.filter(|p| !p.is_empty()) {
            Some(p) => percent_decoded(p).map(Some),
            None => Some(None),
        };
        Some(Url {
            tls,
            host,
            port,
            user: decoded(user)?,
            password: decoded(password)?,
            db: match db {
                "" => 0,
                db => db.parse().ok()?,
            },
        })
    }
}

/// `text` with its `%XX` escapes decoded (a `%` not followed by two hex digits stays);
/// `None` when the result is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub struct Connection {
    /// TCP, or TLS over it.
    link: transport::Connection,
    /// What the last read got: `read[at..end]` is still to be parsed (a pipeline's
    /// later replies).
    read: Vec<u8>,
    at: usize,
    end: usize,
    /// What one exchange (a command or pipeline and all its replies) may take.
    timeout: Duration,
    /// An exchange failed part-way (I/O, a timeout, a reply that makes no sense): the
    /// stream may hold part of a reply, so the connection cannot be used again. An
    /// error reply leaves it whole.
    broken: bool,
}

/// RESP encoding of one command.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// One reply; errors are replies too (the connection is fine).
enum Reply {
    Ok,
    Int(i64),
    Error(String),
    Bulk(Option<Vec<u8>>),
}

impl Connection {
    /// Connects within `connect`; the TLS handshake (`rediss://`) and every later
    /// exchange are each bounded by `timeout` as a whole, however the server's bytes
    /// trickle in.
    pub fn open(
        target: &Target,
        connect: Duration,
        timeout: Duration,
    ) -> Result<Connection, String> {
        let link = transport::Connection::connect(&target.endpoint, &Deadline::after(connect))?
            .secure(target.tls.as_ref(), &Deadline::after(timeout))?;
        let mut conn = Connection {
            link,
            read: vec![0; READ_CHUNK],
            at: 0,
            end: 0,
            timeout,
            broken: false,
        };
        let mut hello = Vec::new();
        let mut expected = 0;
        if let Some(password) = &target.password {
            match &target.user {
                Some(user) => command(&mut hello, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => command(&mut hello, &[b"AUTH", password.as_bytes()]),
            }
            expected += 1;
        }
        if target.db != 0 {
            command(&mut hello, &[b"SELECT", target.db.to_string().as_bytes()]);
            expected += 1;
        }
        first_error(conn.exchange(&hello, expected)?)?;
        Ok(conn)
    }

    /// `GET key`: `None` when the key does not exist.
    pub fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        let mut out = Vec::new();
        command(&mut out, &[b"GET", key.as_bytes()]);
        match self.exchange(&out, 1)?.pop() {
            Some(Reply::Bulk(value)) => Ok(value.map(|v| String::from_utf8_lossy(&v).into_owned())),
            Some(Reply::Error(e)) => Err(e),
            _ => Err("unexpected reply to GET".into()),
        }
    }

    /// `INCRBY key by` then `EXPIRE key seconds`, in one round trip: the new count.
    pub fn incrby_expire(&mut self, key: &str, by: i64, seconds: u64) -> Result<i64, String> {
        let mut out = Vec::new();
        let (by, ttl) = (by.to_string(), seconds.to_string());
        command(&mut out, &[b"INCRBY", key.as_bytes(), by.as_bytes()]);
        command(&mut out, &[b"EXPIRE", key.as_bytes(), ttl.as_bytes()]);
        match self.exchange(&out, 2)?.first() {
            Some(Reply::Int(n)) => Ok(*n),
            Some(Reply::Error(e)) => Err(e.clone()),
            _ => Err("unexpected reply to INCRBY".into()),
        }
    }

    /// `SET key value EX seconds`.
    pub fn set_ex(&mut self, key: &str, value: &str, seconds: u64) -> Result<(), String> {
        let mut out = Vec::new();
        let ttl = seconds.to_string();
        command(
            &mut out,
            &[
                b"SET",
                key.as_bytes(),
                value.as_bytes(),
                b"EX",
                ttl.as_bytes(),
            ],
        );
        first_error(self.exchange(&out, 1)?)
    }

    /// `EVAL script` with `keys` and `args`, for a script that answers an integer.
    pub fn eval_int(&mut self, script: &str, keys: &[&str], args: &[&str]) -> Result<i64, String> {
        let count = keys.len().to_string();
        let mut command_args: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), count.as_bytes()];
        command_args.extend(keys.iter().chain(args).map(|a| a.as_bytes()));
        self.int(&command_args, "EVAL")
    }

    /// Every command of `commands` in one round trip; the first error reply, if any.
    pub fn all(&mut self, commands: &[Vec<&[u8]>]) -> Result<(), String> {
        let mut out = Vec::new();
        for args in commands {
            command(&mut out, args);
        }
        first_error(self.exchange(&out, commands.len())?)
    }

    /// One command answered by an integer.
    fn int(&mut self, args: &[&[u8]], what: &str) -> Result<i64, String> {
        let mut out = Vec::new();
        command(&mut out, args);
        match self.exchange(&out, 1)?.pop() {
            Some(Reply::Int(n)) => Ok(n),
            Some(Reply::Error(e)) => Err(e),
            _ => Err(format!("unexpected reply to {what}")),
        }
    }

    /// `XADD stream * field value` for every value, in one round trip. `Err` means the
    /// connection failed (nothing is known about the batch); `Ok` holds the entries Redis
    /// refused, by index in `values`, with its error reply.
    pub fn xadd_all(
        &mut self,
        stream: &str,
        field: &str,
        values: &[String],
    ) -> Result<Vec<(usize, String)>, String> {
        let mut out = Vec::with_capacity(values.iter().map(|v| v.len() + 64).sum());
        for value in values {
            command(
                &mut out,
                &[
                    b"XADD",
                    stream.as_bytes(),
                    b"*",
                    field.as_bytes(),
                    value.as_bytes(),
                ],
            );
        }
        Ok(errors(self.exchange(&out, values.len())?))
    }

    /// Sends `out` and reads `replies` replies within the timeout, or `Err` when the
    /// connection failed (and must be dropped: it may hold part of a reply).
    fn exchange(&mut self, out: &[u8], replies: usize) -> Result<Vec<Reply>, String> {
        if replies == 0 {
            return Ok(Vec::new());
        }
        let deadline = Deadline::after(self.timeout);
        let mut stream = self.link.within(&deadline);
        let sent = (stream.write_all(out))
            .and_then(|()| stream.flush())
            .map_err(|e| failure(&e, &deadline));
        let result = sent.and_then(|()| (0..replies).map(|_| self.reply(&deadline)).collect());
        self.broken |= result.is_err();
        result
    }

    /// Whether an exchange failed part-way (see `broken`): only an error reply leaves
    /// the connection fit to use again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether the server closed the connection since its last exchange, as Redis does
    /// with clients idle past its `timeout` (and a proxy or a NAT may): asked without
    /// waiting before the connection is used again, so that it is replaced rather than
    /// its first exchange failing as if Redis were down. Bytes nobody asked for would
    /// be read as the next reply: they make it unfit too.
    pub fn closed(&mut self) -> bool {
        self.at < self.end || self.link.closed()
    }

    /// More bytes of the reply, waiting no later than `deadline`.
    fn fill(&mut self, deadline: &Deadline) -> Result<&[u8], String> {
        // Replies already read (a pipeline's) need no wait, nor a system call.
        if self.at == self.end {
            (self.at, self.end) = (0, 0);
            self.end = (self.link.within(deadline).read(&mut self.read))
                .map_err(|e| failure(&e, deadline))?;
            if self.end == 0 {
                return Err("connection closed".into());
            }
        }
        Ok(&self.read[self.at..self.end])
    }

    /// Reads into `out` up to a `\n` (`want` `None`) or `want` bytes of the reply.
    fn read(
        &mut self,
        deadline: &Deadline,
        out: &mut Vec<u8>,
        want: Option<usize>,
    ) -> Result<(), String> {
        loop {
            let bytes = self.fill(deadline)?;
            let take = match want {
                None => bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |i| i + 1),
                Some(n) => bytes.len().min(n - out.len()),
            };
            out.extend_from_slice(&bytes[..take]);
            self.at += take;
            let done = match want {
                None => out.last() == Some(&b'\n'),
                Some(n) => out.len() == n,
            };
            if done {
                return Ok(());
            }
            if out.len() > MAX_REPLY {
                return Err(format!("reply line over {MAX_REPLY} bytes"));
            }
        }
    }

    /// Reads one reply of the kinds the commands above get: status, error, integer or
    /// bulk string.
    fn reply(&mut self, deadline: &Deadline) -> Result<Reply, String> {
        let mut raw = Vec::with_capacity(64);
        self.read(deadline, &mut raw, None)?;
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b'+') => Ok(Reply::Ok),
            Some(b':') => line[1..]
                .parse()
                .map(Reply::Int)
                .map_err(|_| format!("bad reply {line:?}")),
            Some(b'-') => Ok(Reply::Error(line[1..].to_owned())),
            Some(b'$') => {
                let len: i64 = line[1..]
                    .parse()
                    .map_err(|_| format!("bad reply {line:?}"))?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= MAX_REPLY)
                    .ok_or_else(|| format!("bulk reply of {len} bytes"))?;
                let mut body = Vec::with_capacity(len + 2);
                self.read(deadline, &mut body, Some(len + 2))?;
                if !body.ends_with(b"\r\n") {
                    return Err("bulk reply not ended by CRLF".into());
                }
                body.truncate(len);
                Ok(Reply::Bulk(Some(body)))
            }
            _ => Err(format!("unexpected reply {line:?}")),
        }
    }
}

/// What an I/O error within `deadline` says: a read or write timeout as the deadline's.
fn failure(e: &std::io::Error, deadline: &Deadline) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => deadline.passed(),
        _ => e.to_string(),
    }
}

/// The error replies among `replies`, with their places.
fn errors(replies: Vec<Reply>) -> Vec<(usize, String)> {
    replies
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Reply::Error(e) => Some((i, e)),
            _ => None,
        })
        .collect()
}

/// `Err` with the first error reply among `replies`, if any.
fn first_error(replies: Vec<Reply>) -> Result<(), String> {
    match errors(replies).into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use warp_testkit::Redis;

    const TIMEOUT: Duration = Duration::from_secs(2);
    /// `redis_ca` for the plain URLs, which never read it.
    const NO_CA: &str = "/nowhere/ca.pem";

    /// Runs `args` on a plain connection to `port` as the default user with `password`.
    fn admin(port: u16, password: Option<&str>, args: &[&[u8]]) {
        let url = format!("redis://127.0.0.1:{port}");
        let mut conn = Connection::open(
            &Target::parse(&url, NO_CA.as_ref()).unwrap(),
            TIMEOUT,
            TIMEOUT,
        )
        .unwrap();
        if let Some(password) = password {
            conn.all(&[vec![b"AUTH", password.as_bytes()]]).unwrap();
        }
        conn.all(&[args.to_vec()]).unwrap();
    }

    /// The same `redis_url` the API and rtpengine-ctl (the `redis` crate) read: userinfo
    /// percent-encoded, as a password holding `@`, `/` or `:` must be there.
    #[test]
    fn auth_and_select_come_from_the_url_percent_decoded() {
        let redis = Redis::start().unwrap();
        let password = "p@ss/w:rd%";
        admin(
            redis.port,
            None,
            &[b"CONFIG", b"SET", b"requirepass", password.as_bytes()],
        );
        admin(
            redis.port,
            Some(password),
            &[
                b"ACL",
                b"SETUSER",
                b"cdr@edge",
                b"on",
                b">s3:cr/t",
                b"~*",
                b"+@all",
            ],
        );
        let port = redis.port;
        for url in [
            format!("redis://:p%40ss%2Fw%3Ard%25@127.0.0.1:{port}/2"),
            format!("redis://cdr%40edge:s3%3Acr%2Ft@127.0.0.1:{port}/2"),
        ] {
            let target = Target::parse(&url, NO_CA.as_ref()).unwrap();
            let mut conn = Connection::open(&target, TIMEOUT, TIMEOUT)
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            conn.set_ex("k", &url, 60).unwrap();
            assert_eq!(conn.get("k").unwrap().as_deref(), Some(url.as_str()));
        }
        // Both wrote database 2, not 0.
        let mut conn = Connection::open(
            &Target::parse(
                &format!("redis://:p%40ss%2Fw%3Ard%25@127.0.0.1:{port}"),
                NO_CA.as_ref(),
            )
            .unwrap(),
            TIMEOUT,
            TIMEOUT,
        )
        .unwrap();
        assert_eq!(conn.get("k").unwrap(), None);
    }

    #[test]
    fn a_connection_the_server_closed_reads_as_closed() {
        let redis = Redis::start().unwrap();
        let target =
            Target::parse(&format!("redis://127.0.0.1:{}", redis.port), NO_CA.as_ref()).unwrap();
        let mut idle = Connection::open(&target, TIMEOUT, TIMEOUT).unwrap();
        assert_eq!(idle.get("k").unwrap(), None);
        assert!(!idle.closed());
        server_closes(&target, &mut idle);
    }

    /// Has the server close every client connection but a new one, and waits until
    /// `idle` reads as closed.
    fn server_closes(target: &Target, idle: &mut Connection) {
        let mut other = Connection::open(target, TIMEOUT, TIMEOUT).unwrap();
        other
            .all(&[vec![
                b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"yes",
            ]])
            .unwrap();
        assert!(!other.closed());
        let deadline = Instant::now() + TIMEOUT;
        while !idle.closed() {
            assert!(Instant::now() < deadline, "the server's close went unseen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn rediss_takes_the_form_of_redis_and_its_default_port() {
        let url = |tls, host, port, password: Option<&str>, db| Url {
            tls,
            host,
            port,
            user: None,
            password: password.map(str::to_owned),
            db,
        };
        assert_eq!(
            Url::parse("rediss://redis.example.net"),
            Some(url(true, "redis.example.net", 6379, None, 0))
        );
        assert_eq!(
            Url::parse("rediss://:s3cr%40t@[2001:db8::5]:6380/2"),
            Some(url(true, "2001:db8::5", 6380, Some("s3cr@t"), 2))
        );
        assert_eq!(
            Url::parse("rediss://[::1]/1"),
            Some(url(true, "::1", 6379, None, 1))
        );
        assert_eq!(
            Url::parse("redis://10.0.0.5"),
            Some(url(false, "10.0.0.5", 6379, None, 0))
        );
        for bad in [
            "redisss://host",
            "rediss:/host",
            "rediss://",
            "rediss://[::1",
            "rediss://::1",
            "rediss://host/one",
            "https://host",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad:?}");
        }
    }

    /// `redis_ca` is read for a `rediss://` URL only, and an unusable one is named.
    #[test]
    fn only_a_rediss_url_reads_its_ca_file() {
        assert!(Target::parse("redis://127.0.0.1:6379", NO_CA.as_ref())
            .unwrap()
            .tls
            .is_none());
        let err = Target::parse("rediss://:s3cret@127.0.0.1:6380", NO_CA.as_ref())
            .err()
            .unwrap();
        assert!(
            err.starts_with(
                "redis_url \"rediss://:***@127.0.0.1:6380\": its server cannot be checked: \
                 redis_ca /nowhere/ca.pem: "
            ),
            "{err}"
        );
        let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
        let target = Target::parse("rediss://[::1]", system).unwrap();
        // The certificate is checked for the address, not a name.
        let tls = format!("{:?}", target.tls);
        assert!(tls.starts_with("Some(Tls(IpAddress(V6("), "{tls}");
        assert!(Target::parse("rediss://127.0.0.1:6379/x", system)
            .err()
            .unwrap()
            .ends_with("is not redis://[[user]:password@]host[:port][/db] (rediss:// over TLS)"));
    }

    /// Redis's OpenSSL sends TLS 1.3 session tickets once the handshake is done: bytes
    /// on an idle connection, which leave it fit (a peek alone took them for a close);
    /// the server's close does not.
    #[test]
    fn a_tls_connection_reads_as_closed_on_the_servers_close_not_its_tickets() {
        let ca = warp_testkit::TestCa::make("test").unwrap();
        let redis = warp_testkit::Redis::start_tls(&ca).unwrap();
        let target = Target::parse(redis.tls_url.as_deref().unwrap(), &ca.ca).unwrap();
        let mut idle = Connection::open(&target, TIMEOUT, TIMEOUT).unwrap();
        // No exchange yet (no AUTH, no SELECT): nothing has read the tickets.
        std::thread::sleep(Duration::from_millis(200));
        assert!(!idle.closed());
        assert_eq!(idle.get("k").unwrap(), None);
        assert!(!idle.closed());
        server_closes(&target, &mut idle);
    }

    #[test]
    fn stray_percent_signs_stay_and_non_utf8_is_refused() {
        assert_eq!(percent_decoded("a%2"), Some("a%2".into()));
        assert_eq!(percent_decoded("%zz%"), Some("%zz%".into()));
        assert_eq!(percent_decoded("%+1"), Some("%+1".into()));
        assert_eq!(percent_decoded("%C3%A9t%c3%a9"), Some("été".into()));
        assert_eq!(percent_decoded("%ff"), None);
        let err = Target::parse("redis://:s3cret%ff@127.0.0.1", NO_CA.as_ref())
            .err()
            .unwrap();
        assert!(err.contains("redis://:***@127.0.0.1"), "{err}");
    }

    /// `redis://:${PASSWORD}@host` with no password set: the `redis` crate sends no AUTH,
    /// which a Redis without a password would refuse.
    #[test]
    fn an_empty_password_sends_no_auth() {
        let redis = Redis::start().unwrap();
        for url in [
            format!("redis://:@127.0.0.1:{}", redis.port),
            format!("redis://default:@127.0.0.1:{}", redis.port),
        ] {
            let target = Target::parse(&url, NO_CA.as_ref()).unwrap();
            let mut conn = Connection::open(&target, TIMEOUT, TIMEOUT)
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(conn.get("absent").unwrap(), None);
        }
    }
}
