//! A blocking wrapper for callers without a tokio runtime (scripts, other services' sync code).

use crate::bencode::Dict;
use crate::commands::Command;
use crate::error::Result;
use crate::message::Format;
use crate::transport::{Endpoint, Options};
use tokio::runtime::{Builder, Runtime};

#[derive(Debug)]
pub struct Client {
    runtime: Runtime,
    inner: crate::client::Client,
}

impl Client {
    pub fn connect(endpoint: &Endpoint, options: Options) -> Result<Client> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let inner = runtime.block_on(crate::client::Client::connect(endpoint, options))?;
        Ok(Client { runtime, inner })
    }

    pub fn with_format(self, format: Format) -> Client {
        Client {
            runtime: self.runtime,
            inner: self.inner.with_format(format),
        }
    }

    pub fn request(&self, request: &Dict<'_>) -> Result<Dict<'static>> {
        self.runtime.block_on(self.inner.request(request))
    }

    pub fn send<C: Command>(&self, command: &C) -> Result<C::Reply> {
        self.runtime.block_on(self.inner.send(command))
    }
}
