//! Customers and their technical resources: trunks (IP ACL, digest credentials) and
//! numbers.

use super::{normalise_number, number_key};
use crate::auth::roles::Class;
use crate::auth::Principal;
use crate::config::Config;
use crate::crud::{Resource, Rule, Tenant};
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{FromRow, PgConnection};
use std::borrow::Cow;
use utoipa::ToSchema;
use warp_core::model::IpNet;
use warp_core::money;

#[derive(Serialize, FromRow, ToSchema)]
pub struct Customer {
    pub ban: String,
    pub name: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: String,
    /// prepaid, postpaid or hybrid.
    pub billing_model: String,
    pub billing_cycle: String,
    pub payment_terms: String,
    #[schema(value_type = String)]
    pub credit_limit: Decimal,
    pub rate_plan: String,
    #[schema(value_type = String)]
    pub min_margin: Decimal,
    #[schema(value_type = Option<String>)]
    pub rate_limit: Option<Decimal>,
    pub max_results: i32,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    pub ban: String,
    pub name: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub billing_model: Option<String>,
    pub billing_cycle: Option<String>,
    pub payment_terms: Option<String>,
    #[schema(value_type = Option<String>)]
    pub credit_limit: Option<Decimal>,
    pub rate_plan: String,
    #[schema(value_type = Option<String>)]
    pub min_margin: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub rate_limit: Option<Decimal>,
    pub max_results: Option<i32>,
    pub enabled: Option<bool>,
}

impl Resource for Customer {
    const NAME: &'static str = "customer";
    const TABLE: &'static str = "customers";
    const KEY: &'static str = "ban";
    const TENANT: Tenant = Tenant::Column("ban");
    const CLASS: Class = Class::Accounts;
    const STAMP: Option<&'static str> = Some("updated_at");
    type Row = Customer;
    type Input = CustomerInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        super::check_id(input, "ban")?;
        super::check_places(input, &["credit_limit"], 2)?;
        super::check_places(input, &["min_margin", "rate_limit"], money::SCALE)
    }

    /// Its numbers go back to the inventory (the schema sets their customer null), but
    /// an `assigned` one must have a customer: say so, rather than let that check fail
    /// as if the request had sent a bad value. Every number of the customer is locked:
    /// one being assigned meanwhile (its customer unchanged, so not waiting on this
    /// customer's lock) is counted once committed.
    async fn check_delete(conn: &mut PgConnection, id: &str) -> ApiResult<()> {
        let (n, first): (i64, Option<String>) = sqlx::query_as(
            "WITH n AS MATERIALIZED (SELECT e164, status FROM numbers WHERE ban = $1 FOR UPDATE)
             SELECT count(*), min(e164) FROM n WHERE status = 'assigned'",
        )
        .bind(id)
        .fetch_one(conn)
        .await?;
        match first {
            Some(first) => Err(ApiError::conflict(format!(
                "{n} number(s) are assigned to this customer (first: {first}); \
                 release or move them before deleting it"
            ))),
            None => Ok(()),
        }
    }
}

#[derive(Serialize, FromRow, ToSchema)]
pub struct Trunk {
    pub id: String,
    pub ban: String,
    pub name: String,
    /// How the edge knows the trunk's calls: IP_ACL by source address (its credentials
    /// identify nothing), CREDENTIALS by digest credentials from any address (its
    /// addresses admit nothing), IP_AND_CREDENTIALS by credentials sent from one of
    /// its addresses.
    pub auth_type: String,
    /// 0 = unlimited.
    pub max_concurrent: i32,
    pub max_cps: i32,
    pub enabled: bool,
    /// The edge sends the trunk's side of each answered call an in-dialog OPTIONS every
    /// DLG_KEEPALIVE s and ends a call whose PBX stops answering; false for a PBX that
    /// ignores in-dialog OPTIONS (its calls would be ended a few minutes in). The
    /// vendor's side is as its vendor's `keepalive` says.
    pub keepalive: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkInput {
    pub id: String,
    pub ban: String,
    pub name: Option<String>,
    /// IP_ACL (when not given), CREDENTIALS or IP_AND_CREDENTIALS; see `Trunk`.
    pub auth_type: Option<String>,
    pub max_concurrent: Option<i32>,
    pub max_cps: Option<i32>,
    pub enabled: Option<bool>,
    /// true when not given; see `Trunk`.
    pub keepalive: Option<bool>,
}

impl Resource for Trunk {
    const NAME: &'static str = "trunk";
    const TABLE: &'static str = "trunks";
    const KEY: &'static str = "id";
    const TENANT: Tenant = Tenant::Column("ban");
    const FILTERS: &'static [&'static str] = &["ban"];
    const CLASS: Class = Class::Technical;
    type Row = Trunk;
    type Input = TrunkInput;

    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        super::check_id(input, "id")
    }

    /// A trunk changing customer takes its networks along: it takes turns with the
    /// writers of networks (see [`TrunkIp`]).
    async fn lock(conn: &mut PgConnection, parent: Option<&str>) -> ApiResult<()> {
        TrunkIp::lock(conn, parent).await
    }

    /// Runs under the trunk's row lock; a number attached meanwhile waits on that lock
    /// (its foreign key) and then sees the trunk's new customer. Its networks may not
    /// overlap another customer's under its new customer either (a customer's own
    /// trunks may nest).
    async fn check(
        conn: &mut PgConnection,
        _parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        super::refuse_stranding_numbers(&mut *conn, id, row, "trunk_id", "text", "trunk").await?;
        let Some(id) = id else { return Ok(()) };
        let clash: Option<(String, String)> = sqlx::query_as(
            "SELECT mine.addr::text, other.addr::text FROM trunk_ips mine
             JOIN trunk_ips other ON other.addr && mine.addr AND other.trunk_id <> mine.trunk_id
             JOIN trunks t ON t.id = other.trunk_id
             WHERE mine.trunk_id = $1 AND t.ban IS DISTINCT FROM $2
             LIMIT 1",
        )
        .bind(id)
        .bind(super::text(row, "ban"))
        .fetch_optional(conn)
        .await?;
        match clash {
            Some((mine, other)) => Err(ApiError::conflict(format!(
                "this trunk's {mine} overlaps {other} of another customer's trunk"
            ))
            .field("ban")),
            None => Ok(()),
        }
    }
}

/// The customer of a trunk child row.
const TRUNK_OWNER: Tenant = Tenant::Expr("(SELECT t.ban FROM trunks t WHERE t.id = r.trunk_id)");

#[derive(Serialize, FromRow, ToSchema)]
pub struct TrunkIp {
    pub id: i64,
    pub trunk_id: String,
    /// Address with prefix length, e.g. 198.51.100.0/24.
    pub addr: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkIpInput {
    pub addr: String,
}

impl Resource for TrunkIp {
    const NAME: &'static str = "trunk_ip";
    const TABLE: &'static str = "trunk_ips";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const PARENT: Option<&'static str> = Some("trunk_id");
    const TENANT: Tenant = TRUNK_OWNER;
    const SELECT: &'static str = "r.id, r.trunk_id, r.addr::text AS addr";
    const CLASS: Class = Class::Technical;
    type Row = TrunkIp;
    type Input = TrunkIpInput;

    /// Stored as the network it names (`10.0.0.5/24` is `10.0.0.0/24`): the same network
    /// written twice must meet the unique column, or the snapshot would refuse it and
    /// every publish with it.
    fn prepare(input: &mut Map<String, Value>, _given: &[String]) -> ApiResult<()> {
        if let Some(a) = input.get("addr").and_then(Value::as_str) {
            let net = a
                .parse::<IpNet>()
                .map_err(|e| ApiError::invalid("addr", e))?;
            input.insert("addr".into(), net.network().to_string().into());
        }
        Ok(())
    }

    /// Writers of trunk networks take turns: the overlap check below reads them all.
    async fn lock(conn: &mut PgConnection, _parent: Option<&str>) -> ApiResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('trunk_ips'))")
            .execute(conn)
            .await?;
        Ok(())
    }

    /// A network may not overlap another customer's: the longest match would take that
    /// customer's calls from the addresses they share (a customer's own trunks may nest).
    async fn check(
        conn: &mut PgConnection,
        parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        let (Some(trunk), Some(addr)) = (parent, row.get("addr").and_then(Value::as_str)) else {
            return Ok(());
        };
        let own = id.and_then(|i| i.parse::<i64>().ok());
        let clash: Option<(i64,)> = sqlx::query_as(
            "SELECT i.id FROM trunk_ips i JOIN trunks t ON t.id = i.trunk_id
             WHERE i.addr && $1::inet
               AND t.ban IS DISTINCT FROM (SELECT ban FROM trunks WHERE id = $2)
               AND i.id IS DISTINCT FROM $3
             LIMIT 1",
        )
        .bind(addr)
        .bind(trunk)
        .bind(own)
        .fetch_optional(conn)
        .await?;
        match clash {
            Some(_) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("{addr} overlaps a network of another customer's trunk"),
            )
            .field("addr")),
            None => Ok(()),
        }
    }
}

#[derive(Serialize, FromRow, ToSchema)]
pub struct TrunkCredential {
    pub id: i64,
    pub trunk_id: String,
    pub username: String,
    pub realm: String,
}

/// The password is turned into Kamailio's ha1 (md5 of user:realm:password) and dropped,
/// so a change of username or realm needs it again. The edge checks the ha1 in the
/// published snapshot, which holds it when the trunk's auth_type asks for credentials.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkCredentialInput {
    pub username: String,
    /// The digest realm the edge challenges in (its AUTH_REALM); when not given, the
    /// API's WARP_SIP_REALM.
    pub realm: Option<String>,
    pub password: String,
}

impl Resource for TrunkCredential {
    const NAME: &'static str = "trunk_credential";
    const TABLE: &'static str = "trunk_credentials";
    const KEY: &'static str = "id";
    const KEY_TYPE: &'static str = "bigint";
    const PARENT: Option<&'static str> = Some("trunk_id");
    const TENANT: Tenant = TRUNK_OWNER;
    const SELECT: &'static str = "r.id, r.trunk_id, r.username, r.realm";
    const CLASS: Class = Class::Technical;
    type Row = TrunkCredential;
    type Input = TrunkCredentialInput;

    fn prepare_in(
        config: &Config,
        _who: &Principal,
        input: &mut Map<String, Value>,
        given: &[String],
    ) -> ApiResult<()> {
        let field = |k: &str| {
            input
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        // Bounded like an id (it is a unique, indexed one) and sendable in a digest.
        super::check_field(input, "username", warp_core::model::check_username)?;
        // Checked when sent; a stored realm is the one a new password keeps.
        if given.iter().any(|g| g == "realm") {
            super::check_field(input, "realm", warp_core::model::check_realm)?;
        }
        let realm = match input.get("realm").and_then(Value::as_str) {
            // Stored by `warp import` without a password: an ha1 in no realm would
            // answer no challenge, and a realm not sent is not written.
            Some("") => {
                return Err(ApiError::invalid(
                    "realm",
                    format!(
                        "this credential has no realm yet: send one with the password \
                         (null: {:?}, WARP_SIP_REALM)",
                        config.sip_realm
                    ),
                ))
            }
            Some(r) => r.to_string(),
            // Not given: the realm the edge challenges in, or its ha1 would never match.
            None => config.sip_realm.clone(),
        };
        let (user, password) = (field("username"), field("password"));
        if password.len() < 8 {
            return Err(ApiError::invalid("password", "at least 8 characters"));
        }
        let ha1 = hex::encode(Md5::digest(format!("{user}:{realm}:{password}")));
        input.remove("password");
        input.insert("realm".into(), realm.into());
        input.insert("ha1".into(), ha1.into());
        Ok(())
    }
}

#[derive(Serialize, FromRow, ToSchema)]
pub struct PhoneNumber {
    /// E.164 digits.
    pub e164: String,
    pub ban: Option<String>,
    pub trunk_id: Option<String>,
    /// available, reserved, assigned, aging or ported_out.
    pub status: String,
    pub voice_enabled: bool,
    pub sms_enabled: bool,
    pub mms_enabled: bool,
    pub fax_enabled: bool,
    pub e911_address_id: Option<i64>,
    pub cnam: Option<String>,
    pub assigned_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneNumberInput {
    /// Any accepted form (+E.164, NANP 10 digits, 1+10, 011+…); stored as E.164 digits.
    pub e164: String,
    pub ban: Option<String>,
    pub trunk_id: Option<String>,
    pub status: Option<String>,
    pub voice_enabled: Option<bool>,
    pub sms_enabled: Option<bool>,
    pub mms_enabled: Option<bool>,
    pub fax_enabled: Option<bool>,
    pub cnam: Option<String>,
}

impl Resource for PhoneNumber {
    const NAME: &'static str = "number";
    const TABLE: &'static str = "numbers";
    const KEY: &'static str = "e164";
    const TENANT: Tenant = Tenant::Column("ban");
    const FILTERS: &'static [&'static str] = &["ban", "trunk_id", "status"];
    // The CHECK on numbers.status.
    const FILTER_VALUES: &'static [(&'static str, &'static [&'static str])] = &[(
        "status",
        &["available", "reserved", "assigned", "aging", "ported_out"],
    )];
    const CLASS: Class = Class::Technical;
    const RULE: Option<Rule> = Some(Rule {
        holds: "r.trunk_id IS NULL OR EXISTS (SELECT 1 FROM trunks t
                WHERE t.id = r.trunk_id AND t.ban IS NOT DISTINCT FROM r.ban)",
        field: "trunk_id",
        message: "the trunk belongs to another customer",
    });
    type Row = PhoneNumber;
    type Input = PhoneNumberInput;

    fn key(id: &str) -> Cow<'_, str> {
        number_key(id)
    }

    fn prepare(input: &mut Map<String, Value>, given: &[String]) -> ApiResult<()> {
        normalise_number(input, "e164", given)?;
        super::cnam::normalise(input, given)
    }

    /// A number moving to another customer (or back to the inventory) may not take its
    /// customer's 911 address along: that address is where the old customer's calls
    /// come from, and another customer's row. Runs under the number's row lock.
    async fn check(
        conn: &mut PgConnection,
        _parent: Option<&str>,
        id: Option<&str>,
        row: &Map<String, Value>,
    ) -> ApiResult<()> {
        let Some(id) = id else { return Ok(()) };
        let foreign: Option<(i64,)> = sqlx::query_as(
            "SELECT a.id FROM numbers n JOIN e911_addresses a ON a.id = n.e911_address_id
             WHERE n.e164 = $1 AND a.ban IS DISTINCT FROM $2",
        )
        .bind(id)
        .bind(super::text(row, "ban"))
        .fetch_optional(conn)
        .await?;
        match foreign {
            Some((address,)) => Err(ApiError::conflict(format!(
                "the number's E911 address {address} belongs to its current customer; \
                 remove it (DELETE /api/v1/numbers/{id}/e911) before moving the number"
            ))
            .field("ban")),
            None => Ok(()),
        }
    }
}
