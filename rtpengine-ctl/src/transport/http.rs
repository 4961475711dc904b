//! HTTP: `POST /ng` with `Content-Type: application/x-rtpengine-ng`, one request per
//! connection. A minimal HTTP/1.1 client: enough for rtpengine's embedded server. The
//! reply ends where its Content-Length or chunking says, not only at the close: a server
//! that keeps the connection open after answering is not waited on.

use super::{timeout_error, Options, MAX_MESSAGE};
use crate::error::{Error, Result};
use crate::message;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Http {
    addr: SocketAddr,
    host: String,
    path: String,
    options: Options,
}

impl Http {
    pub fn new(addr: SocketAddr, host: String, path: String, options: Options) -> Http {
        Http {
            addr,
            host,
            path,
            options,
        }
    }

    pub async fn exchange(&self, cookie: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        let started = Instant::now();
        let response = tokio::time::timeout(self.options.total(), self.post(cookie, body))
            .await
            .map_err(|_| timeout_error(1, started))??;
        let (reply_cookie, reply_body) = message::split(&response)?;
        if reply_cookie != cookie {
            return Err(Error::Protocol("HTTP reply carries another cookie".into()));
        }
        Ok(reply_body.to_vec())
    }

    async fn post(&self, cookie: &[u8], body: &[u8]) -> Result<Vec<u8>> {
        let payload = message::frame(cookie, body);
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-rtpengine-ng\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            payload.len()
        )
        .into_bytes();
        request.extend_from_slice(&payload);
        let mut stream = TcpStream::connect(self.addr).await?;
        stream.write_all(&request).await?;
        let mut response = Response::default();
        loop {
            // One byte past the limit tells a response over it from one exactly at it.
            let room = MAX_MESSAGE + 1 - response.raw.len();
            let n = (&mut stream)
                .take(room as u64)
                .read_buf(&mut response.raw)
                .await?;
            if response.raw.len() > MAX_MESSAGE {
                return Err(too_large());
            }
            if let Some(body) = response.body(n == 0)? {
                return Ok(body);
            }
        }
    }
}

fn too_large() -> Error {
    Error::Http("response over 16 MiB".into())
}

/// A response read so far. Each read resumes where the last one stopped.
#[derive(Debug, Default)]
struct Response {
    raw: Vec<u8>,
    /// Where the search for the end of the headers resumes.
    searched: usize,
    /// Where the body starts, and how it ends, once the headers are in.
    framing: Option<(usize, Framing)>,
}

#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked(Dechunker),
    /// Neither: the body is all the server sends before it closes.
    Close,
}

impl Response {
    /// The body once it is complete; `closed` when the server has closed, so nothing
    /// more comes.
    fn body(&mut self, closed: bool) -> Result<Option<Vec<u8>>> {
        let (body_at, framing) = match &mut self.framing {
            Some(f) => f,
            None => match find(&self.raw[self.searched..], b"\r\n\r\n") {
                Some(at) => {
                    let head_end = self.searched + at;
                    let framing = parse_head(&self.raw[..head_end])?;
                    self.framing.insert((head_end + 4, framing))
                }
                None if closed => return Err(Error::Http("no end of headers".into())),
                None => {
                    // The end may straddle this read and the next.
                    self.searched = self.raw.len().saturating_sub(3);
                    return Ok(None);
                }
            },
        };
        let body = &self.raw[*body_at..];
        let complete = match framing {
            Framing::Length(n) if body.len() >= *n => return Ok(Some(body[..*n].to_vec())),
            Framing::Length(_) => None,
            Framing::Chunked(chunks) => chunks.feed(body)?,
            Framing::Close => closed.then(|| body.to_vec()),
        };
        match complete {
            None if closed => Err(Error::Http("body ends before its length".into())),
            complete => Ok(complete),
        }
    }
}

/// Status must be 200; the body is delimited by chunking, Content-Length, or the close.
fn parse_head(head: &[u8]) -> Result<Framing> {
    let head = std::str::from_utf8(head).map_err(|_| Error::Http("headers are not text".into()))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if code != "200" {
        return Err(Error::Http(format!("status line {status:?}")));
    }
    let mut framing = Framing::Close;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") && !matches!(framing, Framing::Chunked(_)) {
            let n = value
                .parse::<usize>()
                .map_err(|_| Error::Http("bad Content-Length".into()))?;
            if n > MAX_MESSAGE {
                return Err(too_large());
            }
            framing = Framing::Length(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            // Chunking wins over a Content-Length (RFC 9112, 6.3).
            framing = Framing::Chunked(Dechunker::default());
        }
    }
    Ok(framing)
}

/// Decodes chunks as they arrive.
#[derive(Debug, Default)]
struct Dechunker {
    /// Where the next chunk's size line starts in the body.
    at: usize,
    out: Vec<u8>,
}

impl Dechunker {
    /// Takes the whole body so far; the decoded body once its last chunk is in.
    fn feed(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>> {
        let bad = || Error::Http("bad chunked encoding".into());
        loop {
            let rest = &body[self.at..];
            let Some(line_end) = find(rest, b"\r\n") else {
                // A size line is a few bytes; a long run without its end is not one.
                return if rest.len() > 1024 {
                    Err(bad())
                } else {
                    Ok(None)
                };
            };
            let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad())?;
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
            if size == 0 {
                return Ok(Some(std::mem::take(&mut self.out)));
            }
            let data = line_end + 2;
            // A size no body can hold (up to usize::MAX) must not overflow.
            let end = data
                .checked_add(size)
                .and_then(|e| e.checked_add(2))
                .ok_or_else(bad)?;
            if rest.len() < end {
                return Ok(None);
            }
            if &rest[end - 2..end] != b"\r\n" {
                return Err(bad());
            }
            self.out.extend_from_slice(&rest[data..end - 2]);
            self.at += end;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of `raw` read in pieces of `piece` bytes, then the close.
    fn read(raw: &[u8], piece: usize) -> Result<Vec<u8>> {
        let mut response = Response::default();
        for p in raw.chunks(piece) {
            response.raw.extend_from_slice(p);
            if let Some(body) = response.body(false)? {
                return Ok(body);
            }
        }
        Ok(response
            .body(true)?
            .expect("a closed response is complete or an error"))
    }

    #[test]
    fn parses_length_chunked_and_errors() {
        for piece in [1, 5, usize::MAX] {
            let r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdXX", piece).unwrap();
            assert_eq!(r, b"abcd");
            let chunked =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n\
                            3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
            assert_eq!(read(chunked, piece).unwrap(), b"abcde");
            let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc";
            assert_eq!(read(close, piece).unwrap(), b"abc");
        }
        assert!(read(b"HTTP/1.1 404 Not Found\r\n\r\n", 5).is_err());
        // A chunk size of 2^64 - 1 is refused, not added to.
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc";
        assert!(read(huge, 5).is_err());
        let unterminated =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n";
        assert!(read(unterminated, 5).is_err());
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc";
        assert!(read(short, 5).is_err());
        let over = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_MESSAGE + 1
        );
        assert!(read(over.as_bytes(), usize::MAX).is_err());
        assert!(read(b"garbage", 5).is_err());
    }

    /// A peer that sends more than any ng reply could be (a wrong endpoint serving a
    /// large file) is cut off rather than read into memory whole.
    #[tokio::test]
    async fn a_response_over_the_message_limit_is_refused() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head).await;
            let mut reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nc1 ".to_vec();
            reply.resize(reply.len() + (17 << 20), b'x');
            let _ = s.write_all(&reply).await;
        });
        let http = Http::new(addr, addr.to_string(), "/ng".into(), Options::default());
        match http.exchange(b"c1", b"d7:command4:pinge").await {
            Err(Error::Http(m)) => assert!(m.contains("16 MiB"), "{m}"),
            Err(e) => panic!("expected an HTTP error, got {e}"),
            Ok(body) => panic!("read a {} byte body", body.len()),
        }
    }
}
