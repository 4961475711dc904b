//! The row shapes of each file: all text, so every field error can be named.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub(super) struct LergCsv {
    pub(super) npa_nxx: String,
    pub(super) block: String,
    pub(super) ocn: String,
    pub(super) lata: String,
    pub(super) state: String,
    pub(super) rate_center: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LocalCsv {
    pub(super) state_a: String,
    pub(super) rate_center_a: String,
    pub(super) state_b: String,
    pub(super) rate_center_b: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct DnoCsv {
    pub(super) number: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct LnpCsv {
    pub(super) number: String,
    pub(super) lrn: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct CustomerCsv {
    pub(super) ban: String,
    pub(super) name: String,
    pub(super) rate_plan: String,
    pub(super) min_margin: String,
    pub(super) rate_limit: String,
    pub(super) max_results: String,
    pub(super) enabled: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TrunkCsv {
    pub(super) trunk_id: String,
    pub(super) ban: String,
    pub(super) max_concurrent: String,
    pub(super) max_cps: String,
    pub(super) enabled: String,
    /// Newer than the file: a dataset written before it reads as it did.
    #[serde(default)]
    pub(super) auth_type: String,
    /// Newer still; empty is true, as before it.
    #[serde(default)]
    pub(super) keepalive: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TrunkIpCsv {
    pub(super) trunk_id: String,
    pub(super) cidr: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TrunkCredentialCsv {
    pub(super) trunk_id: String,
    pub(super) username: String,
    /// Newer than the file, as `auth_type`.
    #[serde(default)]
    pub(super) realm: String,
    #[serde(default)]
    pub(super) ha1: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct VendorCsv {
    pub(super) vendor_id: String,
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) priority: String,
    pub(super) indeterminate_zone: String,
    pub(super) enabled: String,
    /// Newer than the file: empty (or no column) is true, as before it.
    #[serde(default)]
    pub(super) keepalive: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct GatewayCsv {
    pub(super) vendor_id: String,
    pub(super) priority: String,
    pub(super) dialstring: String,
}

/// Shared by `vendor_rates.csv` (owner column `vendor_id`) and `customer_rates.csv`
/// (owner column `rate_plan`).
#[derive(Serialize, Deserialize)]
pub(super) struct RateCsv {
    #[serde(alias = "vendor_id", alias = "rate_plan")]
    pub(super) owner: String,
    pub(super) prefix: String,
    pub(super) ocn: String,
    pub(super) lata: String,
    pub(super) effective_from: String,
    pub(super) effective_to: String,
    pub(super) interstate: String,
    pub(super) intrastate: String,
    pub(super) local: String,
    pub(super) zone1: String,
    pub(super) tollfree: String,
    pub(super) international: String,
    pub(super) initial: String,
    pub(super) subsequent: String,
    pub(super) connect_fee: String,
    pub(super) minimum_charge: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PartitionCsv {
    pub(super) partition_id: String,
    pub(super) name: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PartitionRouteCsv {
    pub(super) partition_id: String,
    pub(super) vendor_id: String,
}

/// The schedule columns that `customer_partitions.csv` and `overrides.csv` share.
pub(super) struct ScheduleCsv {
    pub(super) valid_from: String,
    pub(super) valid_to: String,
    pub(super) tz: String,
    pub(super) days: String,
    pub(super) start: String,
    pub(super) end: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct CustomerPartitionCsv {
    pub(super) ban: String,
    pub(super) partition_id: String,
    pub(super) priority: String,
    pub(super) valid_from: String,
    pub(super) valid_to: String,
    pub(super) tz: String,
    pub(super) days: String,
    pub(super) start: String,
    pub(super) end: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct OverrideCsv {
    pub(super) ban: String,
    pub(super) prefix: String,
    pub(super) vendor_id: String,
    pub(super) valid_from: String,
    pub(super) valid_to: String,
    pub(super) tz: String,
    pub(super) days: String,
    pub(super) start: String,
    pub(super) end: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ExclusionCsv {
    pub(super) ban: String,
    pub(super) vendor_id: String,
    pub(super) prefix: String,
}

/// Copies a row's schedule columns (csv's serde does not support `flatten`).
macro_rules! sched_of {
    ($x:expr) => {
        ScheduleCsv {
            valid_from: $x.valid_from.clone(),
            valid_to: $x.valid_to.clone(),
            tz: $x.tz.clone(),
            days: $x.days.clone(),
            start: $x.start.clone(),
            end: $x.end.clone(),
        }
    };
}
pub(super) use sched_of;
