//! The PostgreSQL side of the CLI: `warp import` and `warp compile --from postgres://…`.

use anyhow::{Context, Result};
use std::path::Path;
use warp_core::dataset;
use warp_core::model::Dataset;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Validates the whole CSV directory (every bad row reported by file and line), then
/// replaces the provisioning data in one transaction: all or nothing.
pub fn import(url: &str, from: &Path) -> Result<()> {
    let d = dataset::read_dir(from).with_context(|| format!("reading {}", from.display()))?;
    runtime()?.block_on(async {
        let pool = warp_db::connect(url).await?;
        warp_db::migrate(&pool).await?;
        let report = warp_db::import_dataset(&pool, &d).await?;
        outln!("imported {} in {:.1?}", from.display(), report.elapsed)?;
        for (table, rows) in report.tables {
            outln!("  {table:<22} {rows:>9}")?;
        }
        Ok(())
    })
}

/// Loads the provisioning data PostgreSQL holds.
pub fn load(url: &str) -> Result<Dataset> {
    runtime()?.block_on(async {
        let pool = warp_db::connect(url).await?;
        Ok(warp_db::load_dataset(&pool).await?)
    })
}
