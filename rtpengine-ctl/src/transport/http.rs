//! HTTP: `POST /ng` with `Content-Type: application/x-rtpengine-ng`, one request per
//! connection. A minimal HTTP/1.1 client: enough for rtpengine's embedded server.

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
        let mut response = Vec::new();
        // One byte past the limit tells a response over it from one exactly at it.
        stream
            .take(MAX_MESSAGE as u64 + 1)
            .read_to_end(&mut response)
            .await?;
        if response.len() > MAX_MESSAGE {
            return Err(Error::Http("response over 16 MiB".into()));
        }
        parse_response(&response)
    }
}

/// Status must be 200; the body is delimited by Content-Length, chunking, or the close.
fn parse_response(raw: &[u8]) -> Result<Vec<u8>> {
    let head_end = find(raw, b"\r\n\r\n").ok_or(Error::Http("no end of headers".into()))?;
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| Error::Http("headers are not text".into()))?;
    let body = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if code != "200" {
        return Err(Error::Http(format!("status line {status:?}")));
    }
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| Error::Http("bad Content-Length".into()))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    if chunked {
        return dechunk(body);
    }
    match length {
        Some(n) if n <= body.len() => Ok(body[..n].to_vec()),
        Some(_) => Err(Error::Http("body shorter than Content-Length".into())),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let bad = || Error::Http("bad chunked encoding".into());
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| bad())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        // A size no body this long can hold (up to usize::MAX) must not overflow.
        if body.len().saturating_sub(2) < size {
            return Err(bad());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_errors() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdXX").unwrap();
        assert_eq!(r, b"abcd");
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r, b"abcde");
        assert!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        // A chunk size of 2^64 - 1 is refused, not added to.
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc";
        assert!(parse_response(huge).is_err());
        assert!(parse_response(b"garbage").is_err());
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
