//! CDR rows written as JSON straight from PostgreSQL's binary rows.
//!
//! A page is 101 rows of 23 columns. Decoding each into owned `String`s and
//! `Decimal`s and then serializing them through serde (escaping every key, timestamps
//! through a char-by-char `collect_str`) cost the API more CPU than PostgreSQL spent
//! finding the rows. Here each value is read from the row's bytes ([`wire`]) and
//! written once. The output is what `serde_json` makes of [`super::Cdr`]: the same keys
//! in the same order, strings escaped by serde_json itself, decimals as strings,
//! timestamps in chrono's RFC 3339 form.

use super::wire;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgRow, PgValueFormat, PgValueRef};
use sqlx::{Row, ValueRef};

/// How a column is decoded and written.
#[derive(Clone, Copy)]
pub enum Kind {
    Text,
    Int,
    Time,
    Money,
}

/// The columns of a CDR in the order of [`super::Cdr`]'s fields; the query selects
/// exactly these, so the SQL and the writer cannot drift apart.
pub const COLUMNS: [(&str, Kind); 23] = [
    ("call_id", Kind::Text),
    ("leg", Kind::Text),
    ("attempt", Kind::Int),
    ("start_stamp", Kind::Time),
    ("answer_stamp", Kind::Time),
    ("end_stamp", Kind::Time),
    ("ban", Kind::Text),
    ("trunk_id", Kind::Text),
    ("ani", Kind::Text),
    ("dnis", Kind::Text),
    ("lrn", Kind::Text),
    ("zone", Kind::Text),
    ("ocn", Kind::Text),
    ("lata", Kind::Int),
    ("state", Kind::Text),
    ("routing_partition", Kind::Text),
    ("vendor_id", Kind::Text),
    ("sip_code", Kind::Int),
    ("disposition", Kind::Text),
    ("duration_secs", Kind::Int),
    ("billed_secs", Kind::Int),
    ("customer_rate", Kind::Money),
    ("customer_charge", Kind::Money),
];

/// Appends the rows to `out` as a JSON array of CDR objects.
pub fn rows(out: &mut Vec<u8>, rows: &[PgRow]) -> sqlx::Result<()> {
    // About 600 bytes a CDR; one allocation for a whole page.
    out.reserve(2 + rows.len() * 640);
    out.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_row(out, row)?;
    }
    out.push(b']');
    Ok(())
}

fn write_row(out: &mut Vec<u8>, row: &PgRow) -> sqlx::Result<()> {
    for (i, (name, kind)) in COLUMNS.iter().enumerate() {
        out.push(if i == 0 { b'{' } else { b',' });
        // Column names are plain ASCII identifiers: nothing to escape.
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        let value = row.try_get_raw(i)?;
        if value.is_null() {
            out.extend_from_slice(b"null");
            continue;
        }
        write_value(out, *kind, value).map_err(|source| sqlx::Error::ColumnDecode {
            index: (*name).to_string(),
            source,
        })?;
    }
    out.push(b'}');
    Ok(())
}

type Written = Result<(), BoxDynError>;

fn write_value(out: &mut Vec<u8>, kind: Kind, value: PgValueRef<'_>) -> Written {
    // Prepared statements' results always come in binary.
    if value.format() != PgValueFormat::Binary {
        return Err("a CDR column came in text format".into());
    }
    let bytes = value.as_bytes()?;
    match kind {
        Kind::Text => write_json(out, std::str::from_utf8(bytes)?),
        Kind::Int => {
            let n = wire::int4(bytes)?;
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            Ok(())
        }
        Kind::Money => wire::numeric(out, bytes),
        Kind::Time => match wire::timestamp(bytes)? {
            Some(parts) => {
                write_time(out, parts);
                Ok(())
            }
            // Signed years: chrono's own form; infinities: PostgreSQL's words for them.
            None => match i64::from_be_bytes(bytes.try_into()?) {
                i64::MAX => write_json(out, "infinity"),
                i64::MIN => write_json(out, "-infinity"),
                _ => write_json(out, &wire::utc(bytes)?),
            },
        },
    }
}

/// What serde_json writes for `v`.
fn write_json(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) -> Written {
    Ok(serde_json::to_writer(out, v)?)
}

/// A time as chrono serializes it: `"YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z"` (PostgreSQL
/// keeps microseconds, so chrono's nine-digit form never arises).
fn write_time(out: &mut Vec<u8>, [year, month, day, hour, minute, second, micros]: [u32; 7]) {
    out.push(b'"');
    wire::padded(out, year, 4);
    for (sep, n) in [
        (b'-', month),
        (b'-', day),
        (b'T', hour),
        (b':', minute),
        (b':', second),
    ] {
        out.push(sep);
        wire::padded(out, n, 2);
    }
    let (fraction, width) = match micros {
        0 => (0, 0),
        n if n % 1_000 == 0 => (n / 1_000, 3),
        n => (n, 6),
    };
    if width > 0 {
        out.push(b'.');
        wire::padded(out, fraction, width);
    }
    out.extend_from_slice(b"Z\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn timestamps_are_written_as_chrono_serializes_them() {
        let base = [
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1600, 2, 29, 7, 8, 9).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
        ];
        let pg_epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        for t in base {
            for micros in [0, 1, 999, 1_000, 120_000, 5_000, 123_456, 999_999] {
                let t = t + chrono::Duration::microseconds(micros);
                let wire = (t - pg_epoch).num_microseconds().unwrap().to_be_bytes();
                let mut out = Vec::new();
                write_time(&mut out, wire::timestamp(&wire).unwrap().unwrap());
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&t).unwrap()
                );
            }
        }
    }

    #[test]
    fn the_columns_are_the_schemas_properties() {
        use utoipa::openapi::{RefOr, Schema};
        let RefOr::T(Schema::Object(cdr)) = <super::super::Cdr as utoipa::PartialSchema>::schema()
        else {
            panic!("Cdr's schema is an object");
        };
        let mut properties: Vec<&str> = cdr.properties.keys().map(String::as_str).collect();
        let mut columns: Vec<&str> = COLUMNS.iter().map(|(name, _)| *name).collect();
        properties.sort_unstable();
        columns.sort_unstable();
        assert_eq!(properties, columns);
    }
}
