//! The CSV directory form of a [`Dataset`](crate::model::Dataset): what `warp gen-data` writes, `warp import`
//! loads into PostgreSQL and `warp compile --from DIR` compiles. Every bad row is
//! reported with its file and line; a directory with any bad row yields no dataset.
//! The file and column list is in `docs/DATA_FORMAT.md`.

mod fields;
mod limits;
mod read;
mod rows;
mod write;

pub use fields::parse_time;
pub use read::read_dir;
pub use write::{write_dir, RATE_COLUMNS};

use std::fmt;

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{} bad row(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Rows(Vec<RowError>),
}
