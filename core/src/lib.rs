//! WARP's routing engine, with no async runtime and no I/O framework: telephone
//! numbers, LERG and jurisdiction, least-cost routing, DNO, rating, and the compiled
//! routing snapshot that every entry point (Kamailio, Lua, Jasmin, the API) shares.

pub mod dataset;
pub mod model;
pub mod money;
pub mod number;
pub mod rating;
pub mod schedule;
pub mod snapshot;
pub mod zone;

pub use number::{Number, NumberError, Prefix};
pub use snapshot::{Decision, Reject, Route, RouteRequest, Snapshot};
pub use zone::{Jurisdiction, Zone};
