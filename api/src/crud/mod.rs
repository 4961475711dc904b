//! Generic CRUD over one table: a resource says what its table, key, parent, owner
//! and input look like; the handlers here do listing with cursors, tenant filtering,
//! validation, writes through `jsonb_populate_record`, audit rows and republishing.

mod handlers;
mod sql;

pub use handlers::{fetch, fetch_for_update, mount, mount_changes, mount_reads};
pub use sql::check_key;

use crate::auth::roles::Class;
use crate::auth::Principal;
use crate::config::Config;
use crate::error::ApiResult;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection};
use std::borrow::Cow;
use std::future::Future;
use utoipa::ToSchema;

/// Which customer owns a row, for tenant isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    /// Not customer data; only staff roles reach it (its class decides).
    None,
    /// A `ban` column of the row itself; filled in on create for customer callers.
    Column(&'static str),
    /// An SQL expression over the row (alias `r`), e.g. the BAN of the parent trunk.
    Expr(&'static str),
}

/// A consistency rule over the written row (alias `r`).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub holds: &'static str,
    pub field: &'static str,
    pub message: &'static str,
}

pub trait Resource: Send + Sync + 'static {
    /// In messages, the audit log and the OpenAPI tags.
    const NAME: &'static str;
    const TABLE: &'static str;
    /// The audit log's entity_type (and so the webhook event's first part).
    const ENTITY: &'static str = Self::TABLE;
    /// The key column, unique within the parent if there is one.
    const KEY: &'static str;
    /// SQL type of the key, for casts of the text the path carries.
    const KEY_TYPE: &'static str = "text";
    /// Column holding the parent's id when nested (`/trunks/{parent}/ips`).
    const PARENT: Option<&'static str> = None;
    const PARENT_TYPE: &'static str = "text";
    const TENANT: Tenant = Tenant::None;
    /// A text[] column of the roles that may read the row: others do not see it.
    const READERS: Option<&'static str> = None;
    /// Columns selected for `Row` (alias `r`).
    const SELECT: &'static str = "r.*";
    /// Columns a list may be filtered on by equality (`?ban=X`).
    const FILTERS: &'static [&'static str] = &[];
    /// The values of filters whose column holds one of a closed set (a CHECK's list, a
    /// boolean's `true`/`false`), taken in any case: another is a 400 naming the
    /// filter, not an empty list.
    const FILTER_VALUES: &'static [(&'static str, &'static [&'static str])] = &[];
    const CLASS: Class;
    /// Whether a change affects routing (and so republishes the snapshot).
    const ROUTING: bool = true;
    /// A column set to now() by a PATCH that changes the row (`updated_at`). One that
    /// `prepare` also fills is not compared: the stamp alone is no change.
    const STAMP: Option<&'static str> = None;
    /// A rule across tables the schema cannot state, checked on the written row.
    const RULE: Option<Rule> = None;

    type Row: for<'r> FromRow<'r, PgRow> + Serialize + ToSchema + Send + Unpin;
    /// The client-settable columns (deny_unknown_fields), also the PATCH shape.
    type Input: DeserializeOwned + Serialize + ToSchema;

    /// The key a path's `{id}` names, as the key column holds it.
    fn key(id: &str) -> Cow<'_, str> {
        Cow::Borrowed(id)
    }

    /// Normalises or checks a validated input before it is written; `given` are the
    /// fields the client sent (a PATCH re-validates stored values it must not rewrite).
    fn prepare(_input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        Ok(())
    }

    /// [`prepare`](Resource::prepare), for a resource whose checks depend on how the API
    /// is configured or who writes.
    fn prepare_in(
        _config: &Config,
        _who: &Principal,
        input: &mut Map<String, Value>,
        given: &[String],
    ) -> ApiResult<()> {
        Self::prepare(input, given)
    }

    /// Runs first in a create or update transaction, before any row is touched: takes
    /// the lock that serialises writes [`check`](Resource::check) must see.
    fn lock(
        _conn: &mut PgConnection,
        _parent: Option<&str>,
    ) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }

    /// Checks the row as it will be written (`id`: the row an update replaces) against
    /// its siblings, under [`lock`](Resource::lock).
    fn check(
        _conn: &mut PgConnection,
        _parent: Option<&str>,
        _id: Option<&str>,
        _row: &Map<String, Value>,
    ) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }

    /// Refuses to delete row `id` (locked by the caller) when that would undo something
    /// other rows depend on.
    fn check_delete(
        _conn: &mut PgConnection,
        _id: &str,
    ) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }
}

/// The input of a resource mounted read-only (`mount_reads`): nothing is accepted.
#[derive(Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

/// Field names of a schema'd struct, read from its utoipa schema (one source of truth).
pub fn schema_fields<T: ToSchema>() -> Vec<String> {
    use utoipa::openapi::{RefOr, Schema};
    match T::schema() {
        RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}
