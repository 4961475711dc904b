//! Rate decks: one per vendor (buy side) or rate plan (sell side), their rows one by
//! one, and whole-deck uploads (CSV or JSON) validated by warp-core's own CSV reader:
//! a deck with any bad row is refused with every bad line listed, and nothing is
//! written; rows of one key whose effective dates overlap are refused too.

use crate::audit::{self, Change};
use crate::auth::roles::{Access, Class};
use crate::auth::Principal;
use crate::crud::Resource;
use crate::envelope::Envelope;
use crate::error::{ApiError, ApiResult, ErrorItem};
use crate::extract::{parse_json, Path, Query};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::FromRow;
use utoipa::ToSchema;
use warp_core::dataset::{read_dir, write_dir, DatasetError};
use warp_core::model::{Dataset, RateKey, RateRow, Vendor};
use warp_core::Zone;

#[derive(Serialize, FromRow, ToSchema)]
pub struct RateDeck {
    pub id: i64,
    pub vendor_id: Option<String>,
    pub rate_plan: Option<String>,
}

/// Exactly one of `vendor_id` and `rate_plan`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateDeckInput {
    pub vendor_id: Option<String>,
    pub rate_plan: Option<String>,
}

impl Resource for RateDeck {
    const NAME: &'static str = "rate_deck";
    const TABLE: &'static str = "rate_decks";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const FILTERS: &'static [&'static str] = &["vendor_id", "rate_plan"];
    const CLASS: Class = Class::Platform;
    type Row = RateDeck;
    type Input = RateDeckInput;
}

/// Per-minute rates by zone (null = not offered), keyed by a digit prefix or by
/// (OCN, LATA), effective over [effective_from, effective_to).
#[derive(Serialize, FromRow, ToSchema)]
pub struct RateDeckRow {
    pub id: i64,
    pub deck_id: i64,
    pub prefix: Option<String>,
    pub ocn: Option<String>,
    pub lata: Option<i32>,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub interstate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub intrastate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub local: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub zone1: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub tollfree: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub international: Option<Decimal>,
    pub initial_secs: i32,
    pub subsequent_secs: i32,
    #[schema(value_type = String)]
    pub connect_fee: Decimal,
    #[schema(value_type = String)]
    pub minimum_charge: Decimal,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateDeckRowInput {
    pub prefix: Option<String>,
    pub ocn: Option<String>,
    pub lata: Option<i32>,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub interstate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub intrastate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub local: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub zone1: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub tollfree: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub international: Option<Decimal>,
    pub initial_secs: Option<i32>,
    pub subsequent_secs: Option<i32>,
    #[schema(value_type = Option<String>)]
    pub connect_fee: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub minimum_charge: Option<Decimal>,
}

impl Resource for RateDeckRow {
    const NAME: &'static str = "rate_row";
    const TABLE: &'static str = "rate_rows";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const PARENT: Option<&'static str> = Some("deck_id");
    const PARENT_TYPE: &'static str = "bigint";
    const FILTERS: &'static [&'static str] = &["prefix", "ocn"];
    const CLASS: Class = Class::Platform;
    type Row = RateDeckRow;
    type Input = RateDeckRowInput;
}

/// The columns of warp-core's rate CSV after the owner column.
const COLUMNS: [&str; 15] = [
    "prefix",
    "ocn",
    "lata",
    "effective_from",
    "effective_to",
    "interstate",
    "intrastate",
    "local",
    "zone1",
    "tollfree",
    "international",
    "initial",
    "subsequent",
    "connect_fee",
    "minimum_charge",
];

/// A JSON deck. Rates may be strings or numbers; `effective_date` fills rows that
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
    /// `append` (default) keeps the deck's rows; `replace` swaps them all.
    #[serde(default)]
    pub mode: Mode,
}

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

/// Where a deck's rows came from, to name bad ones the way the client sees them.
enum Source {
    Csv,
    Json,
}

impl Source {
    fn name(&self, record: usize, line: u64) -> String {
        match self {
            Source::Csv => format!("line {line}"),
            Source::Json => format!("rows[{record}]"),
        }
    }
}

fn row_error(field: String, message: String) -> ErrorItem {
    ErrorItem {
        code: "INVALID_ROW",
        message,
        field: Some(field),
    }
}

fn json_to_csv(owner_col: &str, owner: &str, up: DeckUpload) -> ApiResult<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header: Vec<&str> = std::iter::once(owner_col).chain(COLUMNS).collect();
    let csv_err = |e: csv::Error| ApiError::internal(e);
    w.write_record(&header).map_err(csv_err)?;
    let mut errors = Vec::new();
    for (i, mut row) in up.rows.into_iter().enumerate() {
        if let Some(k) = row.keys().find(|k| !COLUMNS.contains(&k.as_str())) {
            errors.push(row_error(
                format!("rows[{i}].{k}"),
                format!("unknown column {k:?}"),
            ));
            continue;
        }
        if let Some(d) = &up.effective_date {
            row.entry("effective_from")
                .or_insert_with(|| d.clone().into());
        }
        let mut rec = vec![owner.to_string()];
        for c in COLUMNS {
            rec.push(match row.get(c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(_) => {
                    errors.push(row_error(
                        format!("rows[{i}].{c}"),
                        "must be a string or a number".into(),
                    ));
                    String::new()
                }
            });
        }
        w.write_record(&rec).map_err(csv_err)?;
    }
    if !errors.is_empty() {
        return Err(ApiError::many(StatusCode::UNPROCESSABLE_ENTITY, errors));
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    String::from_utf8(bytes).map_err(ApiError::internal)
}

/// Puts the owner column in front when the client's CSV leaves it out.
fn with_owner(owner_col: &str, owner: &str, text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    if first.split(',').any(|h| h.trim() == owner_col) {
        return text.to_string();
    }
    let quoted = format!("\"{}\"", owner.replace('"', "\"\""));
    let mut out = String::with_capacity(text.len() + text.lines().count() * quoted.len());
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str(&format!("{owner_col},{line}\n"));
        } else if line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        } else {
            out.push_str(&format!("{quoted},{line}\n"));
        }
    }
    out
}

/// The line each record starts on, as the CSV reader sees it.
fn record_lines(text: &str) -> Vec<u64> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rec = csv::StringRecord::new();
    let mut lines = Vec::new();
    while let Ok(true) = rdr.read_record(&mut rec) {
        lines.push(rec.position().map_or(0, |p| p.line()));
    }
    lines
}

/// Runs warp-core's dataset reader over a directory holding just this deck.
fn parse_deck(
    deck: &DeckOwner,
    text: &str,
    source: &Source,
) -> ApiResult<(Vec<RateRow>, Vec<u64>)> {
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
        });
    }
    write_dir(&d, dir.path()).map_err(ApiError::internal)?;
    let file = deck.file();
    std::fs::write(dir.path().join(file), text).map_err(ApiError::internal)?;
    let lines = record_lines(text);
    let index = |line: u64| lines.iter().position(|&l| l == line).unwrap_or(0);
    match read_dir(dir.path()) {
        Ok(d) => Ok((
            if deck.vendor_id.is_some() {
                d.vendor_rates
            } else {
                d.customer_rates
            },
            lines,
        )),
        Err(DatasetError::Rows(rows)) => Err(ApiError::many(
            StatusCode::UNPROCESSABLE_ENTITY,
            rows.into_iter()
                .filter(|e| e.file == file)
                .map(|e| row_error(source.name(index(e.line), e.line), e.message))
                .collect(),
        )),
        Err(DatasetError::Io { source: e, .. }) => {
            Err(ApiError::bad_request("BAD_CSV", e.to_string()))
        }
    }
}

fn key_text(k: &RateKey) -> String {
    match k {
        RateKey::Prefix(p) => p.to_string(),
        RateKey::OcnLata { ocn, lata } => format!("{ocn}/{lata}"),
    }
}

/// Rows of one key whose [from, to) ranges meet, each named against the other.
fn overlaps(rows: &[RateRow], lines: &[u64], source: &Source) -> Vec<ErrorItem> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (key_text(&rows[i].key), rows[i].effective_from));
    order
        .windows(2)
        .filter_map(|w| {
            let (a, b) = (&rows[w[0]], &rows[w[1]]);
            let meet = key_text(&a.key) == key_text(&b.key)
                && a.effective_to.is_none_or(|t| t > b.effective_from);
            let line = |i: usize| lines.get(i).copied().unwrap_or(0);
            meet.then(|| ErrorItem {
                code: "RATE_OVERLAP",
                message: format!(
                    "{} from {} overlaps {} for the same key",
                    key_text(&b.key),
                    b.effective_from,
                    source.name(w[0], line(w[0]))
                ),
                field: Some(source.name(w[1], line(w[1]))),
            })
        })
        .collect()
}

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
            (None, Some(p)) => ("rate_plan", p),
            (None, None) => ("rate_plan", ""),
        }
    }
}

/// Rows go in as one JSON array per chunk, so a large deck is a few statements.
const CHUNK: usize = 20_000;

fn row_json(r: &RateRow) -> Value {
    let (prefix, ocn, lata) = match &r.key {
        RateKey::Prefix(p) => (Some(p.to_string()), None, None),
        RateKey::OcnLata { ocn, lata } => (None, Some(ocn.clone()), Some(*lata)),
    };
    serde_json::json!({
        "prefix": prefix, "ocn": ocn, "lata": lata,
        "effective_from": r.effective_from, "effective_to": r.effective_to,
        "interstate": r.rates[0], "intrastate": r.rates[1], "local": r.rates[2],
        "zone1": r.rates[3], "tollfree": r.rates[4], "international": r.rates[5],
        "initial_secs": r.increments.initial, "subsequent_secs": r.increments.subsequent,
        "connect_fee": r.connect_fee, "minimum_charge": r.minimum_charge,
    })
}

pub async fn upload(
    State(st): State<AppState>,
    who: Principal,
    Path(deck_id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Envelope<UploadResult>> {
    who.require(Class::Platform, Access::Write)?;
    crate::crud::check_key("bigint", &deck_id, "rate_deck")?;
    let deck: DeckOwner =
        sqlx::query_as::<_, (i64, Option<String>, Option<String>, Option<String>)>(
            "SELECT d.id, d.vendor_id, d.rate_plan, v.kind FROM rate_decks d
         LEFT JOIN vendors v ON v.id = d.vendor_id WHERE d.id = $1::bigint",
        )
        .bind(&deck_id)
        .fetch_optional(&st.pool)
        .await?
        .map(|(id, vendor_id, rate_plan, kind)| DeckOwner {
            id,
            vendor_id,
            rate_plan,
            kind,
        })
        .ok_or_else(|| ApiError::not_found("rate_deck"))?;
    let (col, owner) = deck.column();
    let is_csv = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let (text, source) = if is_csv {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("BAD_CSV", "the CSV is not UTF-8"))?;
        (with_owner(col, owner, text), Source::Csv)
    } else {
        let up: DeckUpload = parse_json(&body)?;
        (json_to_csv(col, owner, up)?, Source::Json)
    };
    let (rows, lines) = parse_deck(&deck, &text, &source)?;
    let clashes = overlaps(&rows, &lines, &source);
    if !clashes.is_empty() {
        return Err(ApiError::many(StatusCode::UNPROCESSABLE_ENTITY, clashes));
    }

    let mut tx = st.pool.begin().await?;
    let replaced = if q.mode == Mode::Replace {
        sqlx::query("DELETE FROM rate_rows WHERE deck_id = $1")
            .bind(deck.id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
    } else {
        0
    };
    for chunk in rows.chunks(CHUNK) {
        let json = Value::Array(chunk.iter().map(row_json).collect());
        sqlx::query(
            "INSERT INTO rate_rows (deck_id, prefix, ocn, lata, effective_from, effective_to,
                 interstate, intrastate, local, zone1, tollfree, international,
                 initial_secs, subsequent_secs, connect_fee, minimum_charge)
             SELECT $1, x.* FROM jsonb_to_recordset($2) AS x(prefix text, ocn text, lata int,
                 effective_from timestamptz, effective_to timestamptz, interstate numeric,
                 intrastate numeric, local numeric, zone1 numeric, tollfree numeric,
                 international numeric, initial_secs int, subsequent_secs int,
                 connect_fee numeric, minimum_charge numeric)",
        )
        .bind(deck.id)
        .bind(json)
        .execute(&mut *tx)
        .await?;
    }
    let result = UploadResult {
        deck_id: deck.id,
        mode: q.mode,
        rows: rows.len(),
        replaced,
    };
    let change = Change {
        action: "upload",
        entity_type: "rate_decks",
        entity_id: &deck_id,
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
    fn the_owner_column_is_added_when_missing() {
        let t = with_owner(
            "vendor_id",
            "v1",
            "prefix,effective_from\n1212,2025-01-01\n\n1213,x\n",
        );
        assert_eq!(
            t,
            "vendor_id,prefix,effective_from\n\"v1\",1212,2025-01-01\n\n\"v1\",1213,x\n"
        );
        let same = "vendor_id,prefix\nv1,1\n";
        assert_eq!(with_owner("vendor_id", "v1", same), same);
    }

    #[test]
    fn record_lines_skip_nothing() {
        assert_eq!(record_lines("a,b\n1,2\n3,4\n"), vec![2, 3]);
    }
}
