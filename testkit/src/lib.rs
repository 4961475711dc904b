//! Real services for tests, started on loopback in temp dirs and stopped on drop.

mod postgres;

pub use postgres::Postgres;
