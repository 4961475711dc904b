//! Real services for tests, started on loopback in temp dirs and stopped on drop.

mod postgres;
mod redis;

pub use postgres::Postgres;
pub use redis::Redis;
