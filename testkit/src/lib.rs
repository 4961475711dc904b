//! Real services for tests, started on loopback in temp dirs and stopped on drop.

mod ports;
mod postgres;
mod redis;

pub use ports::media_ports;
pub use postgres::Postgres;
pub use redis::Redis;
