//! Whole rate-deck uploads, CSV (`text/csv`) or JSON (`{rows: [...]}`), validated by
//! warp-core's own dataset reader: a deck with any bad row is refused with every bad
//! row named (CSV: `line N`, JSON: `rows[i]`) and nothing is written; rows of one key
//! whose effective dates overlap each other or stored rows are refused too.

use crate::audit::{self, Change};
use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult, ErrorItem};
use crate::extract::{parse_json, Path, Query, RawBody};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use warp_core::dataset::{read_dir, write_dir, DatasetError, RATE_COLUMNS as COLUMNS};
use warp_core::model::{Dataset, RateRow, Vendor};
use warp_core::Zone;
use warp_db::rates::{self, overlaps, Span};

/// A JSON deck. Values may be strings or numbers; `effective_date` fills rows that
/// give no `effective_from`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeckUpload {
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Map<String, Value>>,
    pub effective_date: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    #[serde(default)]
    pub mode: Mode,
}

/// `append` (default) keeps the deck's rows; `replace` swaps them all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Append,
    Replace,
}

#[derive(Serialize, ToSchema)]
pub struct UploadResult {
    pub deck_id: i64,
    pub mode: Mode,
    pub rows: usize,
    /// Rows removed first (`replace`).
    pub replaced: u64,
}

fn row_error(field: String, message: impl Into<String>) -> ErrorItem {
    ErrorItem {
        code: "INVALID_ROW",
        message: message.into(),
        field: Some(field),
    }
}

fn refused(errors: Vec<ErrorItem>) -> ApiError {
    ApiError::many(StatusCode::UNPROCESSABLE_ENTITY, errors)
}

/// The deck as text records in `COLUMNS` order, each with the name the client knows
/// it by.
#[derive(Default)]
struct Records {
    rows: Vec<Vec<String>>,
    origins: Vec<String>,
    errors: Vec<ErrorItem>,
}

impl Records {
    fn from_json(up: DeckUpload) -> Records {
        let mut out = Records::default();
        for (i, mut row) in up.rows.into_iter().enumerate() {
            let origin = format!("rows[{i}]");
            // A null value is an absent one, here as in every other column.
            if let Some(d) = &up.effective_date {
                if row.get("effective_from").is_none_or(Value::is_null) {
                    row.insert("effective_from".into(), d.clone().into());
                }
            }
            for k in row.keys().filter(|k| !COLUMNS.contains(&k.as_str())) {
                out.errors.push(row_error(
                    format!("{origin}.{k}"),
                    format!("unknown column {k:?}"),
                ));
            }
            let mut rec = Vec::with_capacity(COLUMNS.len());
            for c in COLUMNS {
                rec.push(match row.get(c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(_) => {
                        out.errors.push(row_error(
                            format!("{origin}.{c}"),
                            "must be a string or a number",
                        ));
                        String::new()
                    }
                });
            }
            out.rows.push(rec);
            out.origins.push(origin);
        }
        out
    }

    /// Any subset of the columns, in any order; an owner column must name this deck.
    fn from_csv(text: &str, owner_col: &str, owner: &str) -> ApiResult<Records> {
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|e| ApiError::bad_request("BAD_CSV", e.to_string()))?
            .clone();
        // An empty body is no deck (a `replace` would empty the deck on a client's slip).
        if headers.is_empty() {
            return Err(ApiError::bad_request(
                "BAD_CSV",
                "the CSV has no header line",
            ));
        }
        let mut index = Vec::new();
        let mut owner_at = None;
        for (i, h) in headers.iter().enumerate() {
            // Which of a twice-named column's values counts would be a guess.
            if headers.iter().take(i).any(|earlier| earlier == h) {
                return Err(ApiError::invalid(h, format!("column {h:?} appears twice")));
            }
            match COLUMNS.iter().position(|c| *c == h) {
                Some(c) => index.push((i, c)),
                None if h == owner_col => owner_at = Some(i),
                None => {
                    return Err(ApiError::invalid(h, format!("unknown column {h:?}")));
                }
            }
        }
        let mut out = Records::default();
        for rec in rdr.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    out.errors
                        .push(row_error(format!("line {line}"), e.to_string()));
                    continue;
                }
            };
            let origin = format!("line {}", rec.position().map_or(0, |p| p.line()));
            if let Some(o) = owner_at.and_then(|i| rec.get(i)).filter(|o| *o != owner) {
                out.errors.push(row_error(
                    origin.clone(),
                    format!("{owner_col} {o:?} is not this deck's ({owner:?})"),
                ));
            }
            let mut row = vec![String::new(); COLUMNS.len()];
            for &(i, c) in &index {
                row[c] = rec.get(i).unwrap_or_default().to_string();
            }
            out.rows.push(row);
            out.origins.push(origin);
        }
        Ok(out)
    }

    /// warp-core's CSV form: the owner column, then `COLUMNS`.
    fn to_csv(&self, owner_col: &str, owner: &str) -> ApiResult<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let bad = |e: csv::Error| ApiError::internal(e);
        w.write_record(std::iter::once(owner_col).chain(COLUMNS))
            .map_err(bad)?;
        for r in &self.rows {
            w.write_record(std::iter::once(owner).chain(r.iter().map(String::as_str)))
                .map_err(bad)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        String::from_utf8(bytes).map_err(ApiError::internal)
    }
}

/// The line each record of `text` starts on.
fn record_lines(text: &str) -> Vec<u64> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let mut rec = csv::StringRecord::new();
    let mut lines = Vec::new();
    while let Ok(true) = rdr.read_record(&mut rec) {
        lines.push(rec.position().map_or(0, |p| p.line()));
    }
    lines
}

#[derive(sqlx::FromRow, PartialEq)]
struct DeckOwner {
    id: i64,
    vendor_id: Option<String>,
    rate_plan: Option<String>,
    kind: Option<String>,
}

impl DeckOwner {
    fn file(&self) -> &'static str {
        if self.vendor_id.is_some() {
            "vendor_rates.csv"
        } else {
            "customer_rates.csv"
        }
    }

    fn column(&self) -> (&'static str, &str) {
        match (&self.vendor_id, &self.rate_plan) {
            (Some(v), _) => ("vendor_id", v),
            (_, p) => ("rate_plan", p.as_deref().unwrap_or_default()),
        }
    }
}

/// Runs warp-core's dataset reader over a directory holding just this deck.
fn parse(deck: &DeckOwner, records: &Records) -> ApiResult<Vec<RateRow>> {
    let (col, owner) = deck.column();
    let text = records.to_csv(col, owner)?;
    let dir = tempfile::tempdir().map_err(ApiError::internal)?;
    let mut d = Dataset::default();
    if let (Some(id), Some(kind)) = (&deck.vendor_id, &deck.kind) {
        d.vendors.push(Vendor {
            id: id.clone(),
            name: id.clone(),
            kind: kind.parse().map_err(ApiError::internal)?,
            priority: 0,
            indeterminate_zone: Zone::Intrastate,
            gateways: Vec::new(),
            enabled: true,
            keepalive: true,
        });
    }
    write_dir(&d, dir.path()).map_err(ApiError::internal)?;
    std::fs::write(dir.path().join(deck.file()), &text).map_err(ApiError::internal)?;
    let lines = record_lines(&text);
    let origin = |line: u64| {
        let i = lines.iter().position(|&l| l == line);
        i.and_then(|i| records.origins.get(i))
            .cloned()
            .unwrap_or_else(|| format!("record at line {line}"))
    };
    match read_dir(dir.path()) {
        Ok(d) if deck.vendor_id.is_some() => Ok(d.vendor_rates),
        Ok(d) => Ok(d.customer_rates),
        Err(DatasetError::Rows(rows)) => Err(refused(
            rows.into_iter()
                .filter(|e| e.file == deck.file())
                .map(|e| row_error(origin(e.line), e.message))
                .collect(),
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Overlaps among the uploaded rows (`spans[..n]`, named by `origins`) and with the
/// stored rows that follow them, each error on the uploaded row of the pair.
fn overlap_errors(spans: &[Span], n: usize, origins: &[String], stored: &[i64]) -> Vec<ErrorItem> {
    let name = |i: usize| match i.checked_sub(n) {
        None => origins
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("row {i}")),
        Some(j) => format!("stored row {}", stored[j]),
    };
    overlaps(spans)
        .into_iter()
        .filter(|&(a, b)| a < n || b < n)
        .map(|(a, b)| {
            let (mine, other) = if b < n { (b, a) } else { (a, b) };
            let s = &spans[mine];
            ErrorItem {
                code: "RATE_OVERLAP",
                message: format!("{} from {} overlaps {}", s.key, s.from, name(other)),
                field: Some(name(mine)),
            }
        })
        .collect()
}

/// The uploaded deck as records, or every record that is not one.
fn read(deck: &DeckOwner, is_csv: bool, body: &[u8]) -> ApiResult<Records> {
    let records = if is_csv {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("BAD_CSV", "the CSV is not UTF-8"))?;
        let (col, owner) = deck.column();
        Records::from_csv(text, col, owner)?
    } else {
        Records::from_json(parse_json(body)?)
    };
    if records.errors.is_empty() {
        Ok(records)
    } else {
        Err(refused(records.errors))
    }
}

/// The deck, its owner and the owner's kind.
async fn deck_owner(conn: &mut PgConnection, deck_id: &str) -> ApiResult<DeckOwner> {
    crate::crud::check_key("bigint", deck_id, "rate_deck")?;
    sqlx::query_as(
        "SELECT d.id, d.vendor_id, d.rate_plan, v.kind FROM rate_decks d
         LEFT JOIN vendors v ON v.id = d.vendor_id WHERE d.id = $1::bigint",
    )
    .bind(deck_id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("rate_deck"))
}

/// Media types are case-blind and may carry parameters (`Text/CSV; charset=utf-8`).
fn is_csv_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default();
    media.trim().eq_ignore_ascii_case("text/csv")
}

pub async fn upload(
    State(st): State<AppState>,
    who: Principal,
    Path(deck_id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Envelope<UploadResult>> {
    who.require(Class::Platform, Access::Write)?;
    let deck = deck_owner(&mut *st.pool.acquire().await?, &deck_id).await?;
    let is_csv = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_csv_type);
    // Reading a deck of up to 256 MiB takes seconds of CPU: off the async workers, so
    // other requests are not held up meanwhile.
    let (deck, rows, origins) = tokio::task::spawn_blocking(move || {
        let records = read(&deck, is_csv, &body)?;
        let rows = parse(&deck, &records)?;
        Ok::<_, ApiError>((deck, rows, records.origins))
    })
    .await
    .map_err(ApiError::internal)??;
    let mut spans: Vec<Span> = rows.iter().map(Span::of).collect();

    let mut tx = st.pool.begin().await?;
    if !rates::lock_deck(&mut tx, deck.id).await? {
        return Err(ApiError::not_found("rate_deck"));
    }
    // A vendor changing kind takes the deck's lock too. The rows were parsed as the
    // owner priced before it, so an owner changed since (read anew, after the lock)
    // refuses them.
    if deck_owner(&mut tx, &deck_id).await? != deck {
        return Err(ApiError::conflict(
            "the deck's vendor or its kind changed during the upload; send it again",
        ));
    }
    let stored = match q.mode {
        Mode::Replace => Vec::new(),
        Mode::Append => {
            let mut keys: Vec<String> = spans.iter().map(|s| s.key.clone()).collect();
            keys.sort_unstable();
            keys.dedup();
            rates::stored_spans(&mut tx, deck.id, &keys).await?
        }
    };
    let ids: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
    spans.extend(stored.into_iter().map(|(_, s)| s));
    let clashes = overlap_errors(&spans, rows.len(), &origins, &ids);
    if !clashes.is_empty() {
        return Err(refused(clashes));
    }
    let replaced = match q.mode {
        Mode::Replace => sqlx::query("DELETE FROM rate_rows WHERE deck_id = $1")
            .bind(deck.id)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
        Mode::Append => 0,
    };
    // Collected first: a closure in the handler's future trips axum's Send check.
    let owned: Vec<(i64, &RateRow)> = rows.iter().map(|r| (deck.id, r)).collect();
    rates::copy_rates(&mut tx, owned).await?;
    let result = UploadResult {
        deck_id: deck.id,
        mode: q.mode,
        rows: rows.len(),
        replaced,
    };
    let key = deck.id.to_string();
    let change = Change {
        action: "upload",
        class: Class::Platform,
        entity_type: "rate_decks",
        entity_id: &key,
        before: None,
        after: serde_json::to_value(&result).ok(),
    };
    audit::record(&mut tx, &who, change).await?;
    tx.commit().await?;
    st.changed(true);
    Ok(Envelope::ok(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_may_come_in_any_order_and_the_owner_must_match() {
        let r = Records::from_csv(
            "interstate,prefix,vendor_id\n0.1,1212,v1\n0.2,1213,v2\n",
            "vendor_id",
            "v1",
        )
        .unwrap();
        assert_eq!(r.rows[0][0], "1212");
        assert_eq!(r.rows[0][5], "0.1");
        assert_eq!(r.origins, ["line 2", "line 3"]);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].field.as_deref(), Some("line 3"));
        assert!(Records::from_csv("prefix,colour\n1,red\n", "vendor_id", "v1").is_err());
    }

    #[test]
    fn record_lines_follow_the_text() {
        assert_eq!(record_lines("a,b\n1,2\n3,4\n"), vec![2, 3]);
    }
}
