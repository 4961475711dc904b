//! The five CRUD handlers, generic over a [`Resource`], and their mounting.

use super::sql::{key_fits, one, visible};
use super::{schema_fields, Resource, Tenant};
use crate::audit::{self, Change};
use crate::auth::roles::Access;
use crate::auth::Principal;
use crate::config::Config;
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, Path, Query, RawBody};
use crate::openapi::{Api, Doc};
use crate::page::{bad_cursor, no_extra, one_of, Page};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use std::borrow::Cow;
use std::collections::HashMap;
use utoipa::openapi::HttpMethod;

type Params = Path<HashMap<String, String>>;

fn param<'a>(p: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str)
}

/// The path's `{id}` as the key column holds it.
fn key<R: Resource>(p: &HashMap<String, String>) -> Cow<'_, str> {
    R::key(param(p, "id").unwrap_or_default())
}

/// Adds list/create on `base` and get/update/delete on `base/{id}`.
pub fn mount<R: Resource>(api: Api, base: &str) -> Api {
    let n = R::NAME;
    let api = api.route(
        HttpMethod::Post,
        base,
        post(create::<R>),
        Doc::new(n, format!("Create a {n}"))
            .body::<R::Input>()
            .returns::<R::Row>()
            .created(),
    );
    mount_changes::<R>(mount_reads::<R>(api, base), base)
}

/// Adds list on `base` and get on `base/{id}`.
pub fn mount_reads<R: Resource>(api: Api, base: &str) -> Api {
    let n = R::NAME;
    api.route(
        HttpMethod::Get,
        base,
        get(list::<R>),
        Doc::new(n, format!("List {n}s"))
            .returns_list::<R::Row>()
            .query(R::FILTERS)
            .closed(R::FILTER_VALUES),
    )
    .route(
        HttpMethod::Get,
        &format!("{base}/{{id}}"),
        get(read::<R>),
        Doc::new(n, format!("Get a {n}")).returns::<R::Row>(),
    )
}

/// Adds update and delete on `base/{id}`.
pub fn mount_changes<R: Resource>(api: Api, base: &str) -> Api {
    let item = format!("{base}/{{id}}");
    let n = R::NAME;
    api.route(
        HttpMethod::Patch,
        &item,
        patch(update::<R>),
        Doc::new(n, format!("Change fields of a {n}"))
            .body::<R::Input>()
            .returns::<R::Row>(),
    )
    .route(
        HttpMethod::Delete,
        &item,
        delete(remove::<R>),
        Doc::new(n, format!("Delete a {n}")).returns::<R::Row>(),
    )
}

async fn list<R: Resource>(
    State(st): State<AppState>,
    who: Principal,
    Path(p): Params,
    Query(mut q): Query<HashMap<String, String>>,
) -> ApiResult<Envelope<Vec<R::Row>>> {
    who.require(R::CLASS, Access::Read)?;
    let page = Page::take(&mut q)?;
    let mut w = visible::<R>(&who, param(&p, "parent"))?;
    for f in R::FILTERS {
        if let Some(mut v) = q.remove(*f) {
            if let Some((_, known)) = R::FILTER_VALUES.iter().find(|(name, _)| name == f) {
                v = one_of(f, &v, known)?.to_string();
            }
            w.cmp(&format!("r.{f}::text"), "=", "text", v);
        }
    }
    no_extra(&q)?;
    if let Some(after) = &page.after {
        // The key is cast in SQL, where text that is no key is a bad value (422).
        if !key_fits(R::KEY_TYPE, after) {
            return Err(bad_cursor());
        }
        w.cmp(&format!("r.{}", R::KEY), ">", R::KEY_TYPE, after.clone());
    }
    let sql = format!(
        "SELECT {} FROM {} r{} ORDER BY r.{} LIMIT {}",
        R::SELECT,
        R::TABLE,
        w.sql(),
        R::KEY,
        page.limit + 1
    );
    let rows = w
        .bind(sqlx::query_as::<_, R::Row>(&sql))
        .fetch_all(&st.pool)
        .await?;
    let (rows, meta) = page.finish(rows, key_of::<R>);
    Ok(Envelope::page(rows, meta))
}

/// The key of a row as text, read through its serialisation (the row is typed).
fn key_of<R: Resource>(row: &R::Row) -> String {
    match serde_json::to_value(row)
        .ok()
        .and_then(|v| v.get(R::KEY).cloned())
    {
        Some(Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// One row of `R` as the caller sees it (another customer's row is a 404).
pub async fn fetch<R: Resource>(
    conn: &mut PgConnection,
    who: &Principal,
    parent: Option<&str>,
    id: &str,
) -> ApiResult<R::Row> {
    select::<R>(conn, who, parent, id, "").await
}

/// [`fetch`], locking the row until the transaction ends: what a change decides from
/// the row stays true until it commits.
pub async fn fetch_for_update<R: Resource>(
    conn: &mut PgConnection,
    who: &Principal,
    parent: Option<&str>,
    id: &str,
) -> ApiResult<R::Row> {
    select::<R>(conn, who, parent, id, " FOR UPDATE OF r").await
}

async fn select<R: Resource>(
    conn: &mut PgConnection,
    who: &Principal,
    parent: Option<&str>,
    id: &str,
    lock: &str,
) -> ApiResult<R::Row> {
    let w = one::<R>(who, parent, id)?;
    let sql = format!("SELECT {} FROM {} r{}{lock}", R::SELECT, R::TABLE, w.sql());
    w.bind(sqlx::query_as::<_, R::Row>(&sql))
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| ApiError::not_found(R::NAME))
}

async fn read<R: Resource>(
    State(st): State<AppState>,
    who: Principal,
    Path(p): Params,
) -> ApiResult<Envelope<R::Row>> {
    who.require(R::CLASS, Access::Read)?;
    let mut conn = st.pool.acquire().await?;
    let id = key::<R>(&p);
    Ok(Envelope::ok(
        fetch::<R>(&mut conn, &who, param(&p, "parent"), &id).await?,
    ))
}

/// Validates `obj` as `R::Input` and returns it normalised, with only the keys it has;
/// `given` are those the client sent (a PATCH's `obj` holds the stored values too).
fn validated<R: Resource>(
    config: &Config,
    who: &Principal,
    obj: Map<String, Value>,
    given: &[String],
) -> ApiResult<Map<String, Value>> {
    let keys: Vec<String> = obj.keys().cloned().collect();
    let bytes = serde_json::to_vec(&obj).map_err(ApiError::internal)?;
    let input: R::Input = parse_json(&bytes)?;
    let Value::Object(mut all) = serde_json::to_value(input).map_err(ApiError::internal)? else {
        return Err(ApiError::internal("input is not an object"));
    };
    all.retain(|k, v| keys.contains(k) || !v.is_null());
    R::prepare_in(config, who, &mut all, given)?;
    Ok(all)
}

fn object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    match parse_json::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::invalid("", "the body must be a JSON object")),
    }
}

/// `cols` quoted, each after `alias` (`r.` or none).
fn quoted(alias: &str, cols: &[&String]) -> String {
    cols.iter()
        .map(|c| format!("{alias}\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn create<R: Resource>(
    State(st): State<AppState>,
    who: Principal,
    Path(p): Params,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Envelope<R::Row>)> {
    who.require(R::CLASS, Access::Write)?;
    let mut obj = object(&body)?;
    if let (Tenant::Column(c), Some(ban)) = (R::TENANT, who.tenant()) {
        obj.entry(c).or_insert_with(|| ban.into());
    }
    let given: Vec<String> = obj.keys().cloned().collect();
    let mut obj = validated::<R>(&st.config, &who, obj, &given)?;
    obj.retain(|_, v| !v.is_null());
    let parent = param(&p, "parent");
    if let (Some(col), Some(pv)) = (R::PARENT, parent) {
        super::sql::check_key(R::PARENT_TYPE, pv, col)?;
        obj.insert(col.into(), pv.into());
    }
    let cols: Vec<&String> = obj.keys().collect();
    // With nothing given, the table's defaults and checks decide.
    let values = if cols.is_empty() {
        "DEFAULT VALUES".to_string()
    } else {
        let c = quoted("", &cols);
        format!(
            "({c}) SELECT {c} FROM jsonb_populate_record(NULL::{}, $1)",
            R::TABLE
        )
    };
    let sql = format!(
        "INSERT INTO {} {values} RETURNING {}::text",
        R::TABLE,
        R::KEY
    );
    let mut tx = st.pool.begin().await?;
    R::lock(&mut tx, parent).await?;
    R::check(&mut tx, parent, None, &obj).await?;
    let mut insert = sqlx::query_as(&sql);
    if !cols.is_empty() {
        insert = insert.bind(Value::Object(obj.clone()));
    }
    let (id,): (String,) = insert.fetch_one(&mut *tx).await?;
    // Read back through the caller's view: a row outside its tenancy rolls back.
    let row = fetch::<R>(&mut tx, &who, parent, &id).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            ApiError::not_found("parent or customer")
        } else {
            e
        }
    })?;
    check_rule::<R>(&mut tx, parent, &id).await?;
    let after = serde_json::to_value(&row).ok();
    audit::record(&mut tx, &who, change::<R>("create", &id, None, after)).await?;
    tx.commit().await?;
    st.changed(R::ROUTING);
    Ok((StatusCode::CREATED, Envelope::ok(row)))
}

fn change<'a, R: Resource>(
    action: &'a str,
    id: &'a str,
    before: Option<Value>,
    after: Option<Value>,
) -> Change<'a> {
    Change {
        action,
        class: R::CLASS,
        entity_type: R::ENTITY,
        entity_id: id,
        before,
        after,
    }
}

async fn update<R: Resource>(
    State(st): State<AppState>,
    who: Principal,
    Path(p): Params,
    RawBody(body): RawBody,
) -> ApiResult<Envelope<R::Row>> {
    who.require(R::CLASS, Access::Write)?;
    let patch = object(&body)?;
    let (parent, id) = (param(&p, "parent"), &*key::<R>(&p));
    // A customer caller may not hand its rows to someone else; staff may move them.
    let owner = tenant_column::<R>().filter(|_| who.tenant().is_some());
    let fixed = [Some(R::KEY), R::PARENT, owner];
    if let Some(k) = patch.keys().find(|k| fixed.contains(&Some(k.as_str()))) {
        return Err(ApiError::invalid(k, format!("{k} cannot be changed")));
    }
    let mut tx = st.pool.begin().await?;
    R::lock(&mut tx, parent).await?;
    let w = one::<R>(&who, parent, id)?;
    let sql = format!(
        "SELECT to_jsonb(r) FROM {} r{} FOR UPDATE",
        R::TABLE,
        w.sql()
    );
    let (current,): (Value,) = w
        .bind(sqlx::query_as(&sql))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found(R::NAME))?;
    let before = fetch::<R>(&mut tx, &who, parent, id).await?;
    // Asks for no change: nothing to validate, audit or announce.
    if patch.is_empty() {
        return Ok(Envelope::ok(before));
    }
    // Validate the whole input as it will be, then write only what changed hands.
    let fields = schema_fields::<R::Input>();
    let mut merged: Map<String, Value> = match current {
        Value::Object(m) => m.into_iter().filter(|(k, _)| fields.contains(k)).collect(),
        _ => Map::new(),
    };
    let given: Vec<String> = patch.keys().cloned().collect();
    merged.extend(patch);
    let prepared = validated::<R>(&st.config, &who, merged, &given)?;
    R::check(&mut tx, parent, Some(id), &prepared).await?;
    let cols: Vec<&String> = prepared
        .keys()
        .filter(|k| given.contains(k) || !fields.contains(k))
        .filter(|k| R::STAMP != Some(k.as_str()))
        .collect();
    if !write_changes::<R>(&mut tx, &who, parent, id, &cols, &prepared).await? {
        return Ok(Envelope::ok(before));
    }
    check_rule::<R>(&mut tx, parent, id).await?;
    let row = fetch::<R>(&mut tx, &who, parent, id).await?;
    let (b, a) = (
        serde_json::to_value(&before).ok(),
        serde_json::to_value(&row).ok(),
    );
    // Audited under the row's key, not the path's spelling of it (`01`, `+1`).
    let key = key_of::<R>(&row);
    audit::record(&mut tx, &who, change::<R>("update", &key, b, a)).await?;
    tx.commit().await?;
    // As the table's trigger sees it: a column the snapshot does not read changes none.
    let read = warp_db::routing_columns(R::TABLE);
    st.changed(
        R::ROUTING && read.is_none_or(|read| cols.iter().any(|c| read.contains(&c.as_str()))),
    );
    Ok(Envelope::ok(row))
}

/// Writes `cols` of `values` to the row; false when it holds them already, compared as
/// the columns' types (`99.9` and `99.90` are one amount, stored alike).
async fn write_changes<R: Resource>(
    conn: &mut PgConnection,
    who: &Principal,
    parent: Option<&str>,
    id: &str,
    cols: &[&String],
    values: &Map<String, Value>,
) -> ApiResult<bool> {
    if cols.is_empty() {
        return Ok(false);
    }
    let w = one::<R>(who, parent, id)?;
    let n = w.next_param();
    let stamp = R::STAMP.map_or(String::new(), |c| format!(", \"{c}\" = now()"));
    let sql = format!(
        "UPDATE {t} r SET ({c}) = ROW({new}){stamp} \
         FROM jsonb_populate_record(NULL::{t}, ${n}) given{w} \
         AND ROW({old}) IS DISTINCT FROM ROW({new})",
        t = R::TABLE,
        c = quoted("", cols),
        new = quoted("given.", cols),
        old = quoted("r.", cols),
        w = w.sql()
    );
    let written = w
        .bind_plain(sqlx::query(&sql))
        .bind(Value::Object(values.clone()))
        .execute(conn)
        .await?;
    Ok(written.rows_affected() > 0)
}

/// Refuses a written row that breaks the resource's cross-table rule (rolls back).
async fn check_rule<R: Resource>(
    conn: &mut PgConnection,
    parent: Option<&str>,
    id: &str,
) -> ApiResult<()> {
    let Some(rule) = R::RULE else { return Ok(()) };
    let mut w = super::sql::Where::default();
    if let (Some(col), Some(p)) = (R::PARENT, parent) {
        w.cmp(&format!("r.{col}"), "=", R::PARENT_TYPE, p);
    }
    w.cmp(&format!("r.{}", R::KEY), "=", R::KEY_TYPE, id);
    let sql = format!(
        "SELECT coalesce(({}), false) FROM {} r{}",
        rule.holds,
        R::TABLE,
        w.sql()
    );
    let holds: Option<(bool,)> = w.bind(sqlx::query_as(&sql)).fetch_optional(conn).await?;
    match holds {
        Some((true,)) => Ok(()),
        _ => Err(ApiError::invalid(rule.field, rule.message)),
    }
}

fn tenant_column<R: Resource>() -> Option<&'static str> {
    match R::TENANT {
        Tenant::Column(c) => Some(c),
        _ => None,
    }
}

async fn remove<R: Resource>(
    State(st): State<AppState>,
    who: Principal,
    Path(p): Params,
) -> ApiResult<Envelope<R::Row>> {
    who.require(R::CLASS, Access::Delete)?;
    let (parent, id) = (param(&p, "parent"), &*key::<R>(&p));
    let mut tx = st.pool.begin().await?;
    // Locked: what `check_delete` reads of the rows using it stays true until the delete.
    let row = fetch_for_update::<R>(&mut tx, &who, parent, id).await?;
    R::check_delete(&mut tx, id).await?;
    let w = one::<R>(&who, parent, id)?;
    let sql = format!("DELETE FROM {} r{}", R::TABLE, w.sql());
    w.bind_plain(sqlx::query(&sql)).execute(&mut *tx).await?;
    let before = serde_json::to_value(&row).ok();
    let key = key_of::<R>(&row);
    audit::record(&mut tx, &who, change::<R>("delete", &key, before, None)).await?;
    tx.commit().await?;
    st.changed(R::ROUTING);
    // Deleting a customer deletes its keys and users (cascade): this instance forgets
    // them now, not when the trigger's notice comes back. Deletes are rare.
    st.credentials.forget_all();
    Ok(Envelope::ok(row))
}
