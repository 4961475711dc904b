//! WARP's rtpengine toolkit: an ng-protocol client (bencode/JSON over UDP, TCP, HTTP),
//! an ng proxy that spreads calls over a pool of rtpengine nodes, and the
//! `warp-rtpengine` CLI.

pub mod bencode;
pub mod blocking;
pub mod cli;
pub mod client;
pub mod commands;
pub mod cookie;
pub mod error;
pub mod json;
pub mod message;
pub mod proxy;
pub mod replies;
pub mod transport;

pub use client::Client;
pub use error::{Error, Result};
pub use transport::{Endpoint, Options};
