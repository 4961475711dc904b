//! The async ng client: fresh cookie per request, any transport, raw or typed.

use crate::bencode::Dict;
use crate::commands::{check_result, Command};
use crate::cookie::CookieJar;
use crate::error::Result;
use crate::message::{self, Format};
use crate::transport::{Endpoint, Options, Transport};

#[derive(Debug)]
pub struct Client {
    transport: Transport,
    cookies: CookieJar,
    format: Format,
}

impl Client {
    pub async fn connect(endpoint: &Endpoint, options: Options) -> Result<Client> {
        Ok(Client {
            transport: Transport::open(endpoint, options).await?,
            cookies: CookieJar::new(),
            format: Format::Bencode,
        })
    }

    /// Sends dictionaries as JSON instead of bencode (UDP and HTTP only in rtpengine 10.5).
    pub fn with_format(mut self, format: Format) -> Client {
        self.format = format;
        self
    }

    /// Sends an already encoded body under a new cookie; returns the reply body untouched.
    pub async fn exchange(&self, body: &[u8]) -> Result<Vec<u8>> {
        let cookie = self.cookies.next();
        self.transport.exchange(cookie.as_bytes(), body).await
    }

    /// Raw access: any dictionary out, the reply dictionary back, `result` not interpreted.
    pub async fn request(&self, request: &Dict<'_>) -> Result<Dict<'static>> {
        let reply = self.exchange(&self.format.encode(request)?).await?;
        Ok(message::parse_body(&reply)?.into_owned())
    }

    /// Typed access: errors and load-limit replies become `Err`.
    pub async fn send<C: Command>(&self, command: &C) -> Result<C::Reply> {
        let reply = self.request(&command.to_dict()).await?;
        C::parse_reply(check_result(reply)?)
    }
}
