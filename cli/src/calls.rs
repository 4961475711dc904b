//! Sample-call CSVs (`ban,ani,dnis`, as `warp gen-data` writes `sample_calls.csv`), read
//! by `warp route --batch` and `warp bench-route`.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// One call to route: BAN, calling number (`None` = unknown), dialled number.
pub struct Call {
    pub ban: String,
    pub ani: Option<String>,
    pub dnis: String,
}

/// Reads the calls of `path`. Columns are found by their header names, so a file with
/// another column order (or without `ani`) is not routed with the wrong fields; an
/// empty `ani` is an unknown caller.
pub fn read(path: &Path) -> Result<Vec<Call>> {
    let name = path.display();
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("reading {name}"))?;
    let headers = rdr
        .headers()
        .with_context(|| format!("reading {name}"))?
        .clone();
    let column = |c: &str| headers.iter().position(|h| h == c);
    let (Some(ban), Some(dnis)) = (column("ban"), column("dnis")) else {
        bail!("{name}: the header must name the columns ban and dnis (and optionally ani)");
    };
    let ani = column("ani");
    rdr.records()
        .map(|r| {
            let r = r.with_context(|| format!("reading {name}"))?;
            let field = |i: usize| r.get(i).unwrap_or_default().to_string();
            Ok(Call {
                ban: field(ban),
                ani: ani.map(field).filter(|a| !a.is_empty()),
                dnis: field(dnis),
            })
        })
        .collect()
}
