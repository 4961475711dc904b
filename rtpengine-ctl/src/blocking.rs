//! A blocking wrapper for callers without a tokio runtime (scripts, other services' sync code).
//!
//! The async client runs on a runtime of its own on a thread of its own, so this works
//! from any thread, a tokio worker's included: blocking on (or dropping) a runtime there
//! would panic.

use crate::bencode::Dict;
use crate::commands::{check_result, Command};
use crate::error::{Error, Result};
use crate::message::{self, Format};
use crate::transport::{Endpoint, Options};
use std::sync::{mpsc, Arc};
use tokio::runtime::Builder;
use tokio::sync::mpsc as async_mpsc;

/// An encoded request body and where its reply body goes.
type Job = (Vec<u8>, mpsc::SyncSender<Result<Vec<u8>>>);

#[derive(Debug)]
pub struct Client {
    jobs: async_mpsc::UnboundedSender<Job>,
    format: Format,
}

impl Client {
    pub fn connect(endpoint: &Endpoint, options: Options) -> Result<Client> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let (jobs, mut queue) = async_mpsc::unbounded_channel::<Job>();
        let (ready, started) = mpsc::sync_channel(1);
        let endpoint = endpoint.clone();
        std::thread::Builder::new()
            .name("ng-blocking".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let client = match crate::client::Client::connect(&endpoint, options).await {
                        Ok(c) => Arc::new(c),
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    // Each request is a task, so callers on several threads overlap.
                    // Dropping the Client closes the queue and ends the thread.
                    while let Some((body, reply)) = queue.recv().await {
                        let client = client.clone();
                        tokio::spawn(async move {
                            let _ = reply.send(client.exchange(&body).await);
                        });
                    }
                });
            })?;
        started.recv().map_err(|_| Error::Closed)??;
        Ok(Client {
            jobs,
            format: Format::default(),
        })
    }

    pub fn with_format(self, format: Format) -> Client {
        Client { format, ..self }
    }

    pub fn request(&self, request: &Dict<'_>) -> Result<Dict<'static>> {
        let (reply, result) = mpsc::sync_channel(1);
        self.jobs
            .send((self.format.encode(request)?, reply))
            .map_err(|_| Error::Closed)?;
        let body = result.recv().map_err(|_| Error::Closed)??;
        Ok(message::parse_body(&body)?.into_owned())
    }

    pub fn send<C: Command>(&self, command: &C) -> Result<C::Reply> {
        C::parse_reply(check_result(self.request(&command.to_dict())?)?)
    }
}
