//! WHERE clauses with text binds, cast to the column's type in SQL.

use super::{Resource, Tenant};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use sqlx::postgres::PgArguments;
use sqlx::query::{Query, QueryAs};
use sqlx::Postgres;

#[derive(Default)]
pub struct Where {
    clauses: Vec<String>,
    binds: Vec<String>,
}

impl Where {
    /// Adds `expr <op> CAST($n AS ty)`.
    pub fn cmp(&mut self, expr: &str, op: &str, ty: &str, value: impl Into<String>) {
        self.binds.push(value.into());
        self.clauses
            .push(format!("{expr} {op} CAST(${} AS {ty})", self.binds.len()));
    }

    /// The number the next bind will get.
    pub fn next_param(&self) -> usize {
        self.binds.len() + 1
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn bind<'q, O>(
        &'q self,
        mut q: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        for b in &self.binds {
            q = q.bind(b);
        }
        q
    }
}

/// Whether `value` is text PostgreSQL casts to key type `ty` (text, integer or bigint).
pub fn key_fits(ty: &str, value: &str) -> bool {
    match ty {
        "text" => true,
        "integer" => value.parse::<i32>().is_ok(),
        _ => value.parse::<i64>().is_ok(),
    }
}

/// Text that cannot be a value of an integer key names nothing: 404, not a cast error.
pub fn check_key(ty: &str, value: &str, what: &str) -> ApiResult<()> {
    if key_fits(ty, value) {
        Ok(())
    } else {
        Err(ApiError::not_found(what))
    }
}

/// The rows of `R` this caller may see under `parent`.
pub fn visible<R: Resource>(who: &Principal, parent: Option<&str>) -> ApiResult<Where> {
    let mut w = Where::default();
    if let (Some(col), Some(p)) = (R::PARENT, parent) {
        check_key(R::PARENT_TYPE, p, col)?;
        w.cmp(&format!("r.{col}"), "=", R::PARENT_TYPE, p);
    }
    if let Some(ban) = who.tenant() {
        match R::TENANT {
            Tenant::Column(c) => w.cmp(&format!("r.{c}"), "=", "text", ban),
            Tenant::Expr(e) => w.cmp(e, "=", "text", ban),
            // Only staff classes hold untenanted data; refuse rather than leak.
            Tenant::None => return Err(ApiError::not_found(R::NAME)),
        }
    }
    if let Some(col) = R::READERS {
        let role = format!("{{{}}}", who.role.as_str());
        w.cmp(&format!("r.{col}"), "@>", "text[]", role);
    }
    Ok(w)
}

/// `visible` narrowed to one key.
pub fn one<R: Resource>(who: &Principal, parent: Option<&str>, id: &str) -> ApiResult<Where> {
    check_key(R::KEY_TYPE, id, R::NAME)?;
    let mut w = visible::<R>(who, parent)?;
    w.cmp(&format!("r.{}", R::KEY), "=", R::KEY_TYPE, id);
    Ok(w)
}

impl Where {
    pub fn bind_plain<'q>(
        &'q self,
        mut q: Query<'q, Postgres, PgArguments>,
    ) -> Query<'q, Postgres, PgArguments> {
        for b in &self.binds {
            q = q.bind(b);
        }
        q
    }
}
