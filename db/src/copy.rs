//! Bulk loading with `COPY … FROM STDIN` (text format): an order of magnitude faster
//! than INSERTs for the million-row tables.

use crate::DbError;
use sqlx::PgConnection;
use std::fmt::{Display, Write};

/// Sends a chunk to the server once the buffer holds this much.
const CHUNK: usize = 1 << 20;

/// One COPY row being written, field by field.
pub(crate) struct Row<'a> {
    buf: &'a mut String,
    first: bool,
}

impl Row<'_> {
    fn sep(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.buf.push('\t');
        }
    }

    pub fn field(&mut self, v: impl Display) -> &mut Self {
        self.sep();
        let start = self.buf.len();
        let _ = write!(self.buf, "{v}");
        // Escape only when needed: most fields are digits.
        if self.buf[start..].contains(['\\', '\t', '\n', '\r']) {
            let raw = self.buf.split_off(start);
            for c in raw.chars() {
                match c {
                    '\\' => self.buf.push_str("\\\\"),
                    '\t' => self.buf.push_str("\\t"),
                    '\n' => self.buf.push_str("\\n"),
                    '\r' => self.buf.push_str("\\r"),
                    c => self.buf.push(c),
                }
            }
        }
        self
    }

    pub fn opt(&mut self, v: Option<impl Display>) -> &mut Self {
        match v {
            Some(v) => self.field(v),
            None => {
                self.sep();
                self.buf.push_str("\\N");
                self
            }
        }
    }
}

/// Streams `rows` into `target` (`table (col, …)`), `write` filling each row's fields
/// in column order. Returns the number of rows copied.
pub(crate) async fn copy_in<T>(
    conn: &mut PgConnection,
    target: &str,
    rows: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Row, T),
) -> Result<u64, DbError> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {target} FROM STDIN"))
        .await?;
    let mut buf = String::with_capacity(CHUNK + 4096);
    for item in rows {
        write(
            &mut Row {
                buf: &mut buf,
                first: true,
            },
            item,
        );
        buf.push('\n');
        if buf.len() >= CHUNK {
            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
            buf.reserve(CHUNK + 4096);
        }
    }
    if !buf.is_empty() {
        copy.send(buf.into_bytes()).await?;
    }
    Ok(copy.finish().await?)
}
