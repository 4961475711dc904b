//! One error type for the client, the proxy and the CLI.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is in the message, not also a `source`: a chain printed whole
    /// (`{:#}`) would say it twice.
    #[error("I/O: {0}")]
    Io(std::io::Error),
    #[error("no reply after {attempts} attempt(s) in {elapsed:?}")]
    Timeout { attempts: u32, elapsed: Duration },
    #[error("request of {size} bytes is over the {limit}-byte limit of one UDP datagram")]
    TooLarge { size: usize, limit: usize },
    #[error("bad ng message: {0}")]
    Frame(&'static str),
    #[error(transparent)]
    Bencode(#[from] crate::bencode::DecodeError),
    #[error(transparent)]
    Json(#[from] crate::json::JsonError),
    #[error("rtpengine error: {0}")]
    Rtpengine(String),
    #[error("rtpengine load limit: {0}")]
    LoadLimit(String),
    #[error("unexpected reply: {0}")]
    Protocol(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("connection closed")]
    Closed,
    /// A stream connection went away with the request on it: no reply will come.
    #[error("connection lost before the reply: {0}")]
    Lost(String),
    /// A UDP peer's host answered ICMP port unreachable: nothing listens on its port.
    #[error("refused: nothing listens on the peer's port (ICMP port unreachable)")]
    Refused,
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether the request itself could not go out as it is (too big for one datagram),
    /// rather than the peer failing to answer it: no reason to think the peer is down.
    pub fn is_unsendable(&self) -> bool {
        /// EMSGSIZE (Linux): the kernel's own refusal, should it be stricter than ours.
        const MESSAGE_TOO_LONG: i32 = 90;
        match self {
            Error::TooLarge { .. } => true,
            Error::Io(e) => e.raw_os_error() == Some(MESSAGE_TOO_LONG),
            _ => false,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
