//! Real services for tests, started on loopback in temp dirs and stopped on drop.

mod pki;
mod ports;
mod postgres;
mod redis;

pub use pki::TestCa;
pub use ports::{free_tcp_port, free_udp_port, port_block};
pub use postgres::Postgres;
pub use redis::{tls_arguments as redis_tls_arguments, Redis};
