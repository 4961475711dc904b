//! Events: every audited change is the event `{entity_type}.{action}` (the audit log's
//! words, e.g. `trunks.update`, `rate_decks.upload`, `routing_snapshot.publish`). Its
//! deliveries are written in the change's own transaction, so an event exists exactly
//! when its change committed. Staff subscriptions (no BAN) get every event; a
//! customer's only the events of its own rows, and of a row staff moved between two
//! customers only its own side (the other side is null). Either only gets the events
//! its role (its creator's or last updater's) may read: a developer's, no `users.*`.

use crate::audit::Change;
use crate::auth::roles::{Access, Role};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

/// The body of every delivery (the product requirements' webhook event shape; the
/// signature travels in a header, since a body cannot carry its own signature).
#[derive(Serialize)]
struct Event<'a> {
    event_id: String,
    event_type: &'a str,
    timestamp: DateTime<Utc>,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    entity_type: &'a str,
    entity_id: &'a str,
    action: &'a str,
    /// The customer the changed row belongs to; none for platform data.
    ban: Option<&'a str>,
    before: &'a Option<Value>,
    after: &'a Option<Value>,
}

fn field<'a>(row: &'a Option<Value>, name: &str) -> Option<&'a str> {
    row.as_ref()?.get(name)?.as_str()
}

/// The customers of a changed row, after and before (a row moved by staff concerns
/// both): its `ban`, or its trunk's (trunk IPs, credentials).
async fn owners(conn: &mut PgConnection, change: &Change<'_>) -> Result<Vec<String>, sqlx::Error> {
    let mut bans: Vec<String> = Vec::new();
    for row in [&change.after, &change.before] {
        if let Some(ban) = field(row, "ban").filter(|b| !bans.iter().any(|x| x == b)) {
            bans.push(ban.to_string());
        }
    }
    let trunk = field(&change.after, "trunk_id").or(field(&change.before, "trunk_id"));
    if let (true, Some(trunk)) = (bans.is_empty(), trunk) {
        let ban: Option<String> = sqlx::query_scalar("SELECT ban FROM trunks WHERE id = $1")
            .bind(trunk)
            .fetch_optional(conn)
            .await?;
        bans.extend(ban);
    }
    Ok(bans)
}

/// `row` as customer `ban` may see it: not when it names another customer (the other
/// side of a move by staff).
fn seen_by<'a>(row: &'a Option<Value>, ban: &str) -> &'a Option<Value> {
    match field(row, "ban") {
        Some(owner) if owner != ban => &None,
        _ => row,
    }
}

/// Queues the change's event for every subscription that wants it and whose role may
/// read it: staff ones get it whole, a customer's its own side of it.
pub async fn emit(conn: &mut PgConnection, change: &Change<'_>) -> Result<(), sqlx::Error> {
    let event_type = format!("{}.{}", change.entity_type, change.action);
    let readers: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| r.allows(change.class, Access::Read))
        .map(Role::as_str)
        .collect();
    let mut bans = owners(&mut *conn, change).await?;
    // A customer's subscriptions get only what a customer may read (not the carrier's
    // routing configuration that names it: overrides, exclusions).
    if !Role::CustomerAdmin.allows(change.class, Access::Read) {
        bans.clear();
    }
    let mut id = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut id);
    let event_id = format!("evt_{}", hex::encode(id));
    let timestamp = Utc::now();
    let staff = (None, bans.first().map(String::as_str));
    let customers = bans.iter().map(|b| (Some(b.as_str()), Some(b.as_str())));
    for (audience, ban) in std::iter::once(staff).chain(customers) {
        let (before, after) = match audience {
            Some(b) => (seen_by(&change.before, b), seen_by(&change.after, b)),
            None => (&change.before, &change.after),
        };
        let event = Event {
            event_id: event_id.clone(),
            event_type: &event_type,
            timestamp,
            data: Data {
                entity_type: change.entity_type,
                entity_id: change.entity_id,
                action: change.action,
                ban,
                before,
                after,
            },
        };
        let payload = serde_json::to_string(&event).map_err(|e| sqlx::Error::Encode(e.into()))?;
        sqlx::query(
            "INSERT INTO api.webhook_deliveries (webhook_id, event_id, event_type, payload, readers)
             SELECT w.id, $1, $2, $3, $5 FROM api.webhooks w
             WHERE w.active AND w.ban IS NOT DISTINCT FROM $4 AND w.role = ANY ($5)
               AND ($2 = ANY (w.event_types) OR '*' = ANY (w.event_types)
                    OR split_part($2, '.', 1) || '.*' = ANY (w.event_types))",
        )
        .bind(&event_id)
        .bind(&event_type)
        .bind(&payload)
        .bind(audience)
        .bind(&readers)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
