//! The seven roles of the product requirements, the SIP edges' machine role, their API
//! scopes, and the permission matrix: which role may read, write or delete which class
//! of endpoint.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who a key or user acts as: the product's seven roles, and `sip_edge`, a machine role
/// for SIP edges' keys (they pull the routing snapshot, nothing else; no user has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    Support,
    Sales,
    CustomerAdmin,
    Developer,
    Billing,
    ReadOnly,
    /// Not a person's: the key of a SIP edge (a Kamailio node) that pulls the routing
    /// snapshot, and may do nothing else.
    SipEdge,
}

/// What an endpoint touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Carrier-side routing configuration: vendors, partitions, rate decks, DNO,
    /// overrides, exclusions, customer ↔ partition assignments.
    Platform,
    /// Customer accounts.
    Accounts,
    /// A customer's technical resources: trunks, their IPs and credentials, numbers.
    Technical,
    /// Call records.
    Cdrs,
    /// Routing simulation, LCR and publish.
    Routing,
    /// The published snapshot file, as SIP edges pull it. Apart from `Routing`: it
    /// carries every trunk credential's ha1, which simulating on it does not show.
    Snapshot,
    /// API keys.
    Keys,
    /// The audit log.
    Audit,
    /// People who sign in.
    Users,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Delete,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::SuperAdmin,
        Role::Support,
        Role::Sales,
        Role::CustomerAdmin,
        Role::Developer,
        Role::Billing,
        Role::ReadOnly,
        Role::SipEdge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Support => "support",
            Role::Sales => "sales",
            Role::CustomerAdmin => "customer_admin",
            Role::Developer => "developer",
            Role::Billing => "billing",
            Role::ReadOnly => "read_only",
            Role::SipEdge => "sip_edge",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Role::SuperAdmin => &["platform:*"],
            Role::Support => &["support:read", "support:diagnostics"],
            Role::Sales => &["sales:accounts", "sales:reports"],
            Role::CustomerAdmin => &["org:*"],
            Role::Developer => &["org:technical"],
            Role::Billing => &["org:billing"],
            Role::ReadOnly => &["org:read"],
            Role::SipEdge => &["edge:snapshot"],
        }
    }

    /// Customer roles act inside one customer (BAN); the others are the carrier's staff
    /// and its SIP edges.
    pub fn is_customer(self) -> bool {
        matches!(
            self,
            Role::CustomerAdmin | Role::Developer | Role::Billing | Role::ReadOnly
        )
    }

    /// A role for machines' keys, never for a person who signs in.
    pub fn is_machine(self) -> bool {
        matches!(self, Role::SipEdge)
    }

    /// The permission matrix. Customer roles are further confined to their own BAN.
    pub fn allows(self, class: Class, access: Access) -> bool {
        use Access::*;
        use Class::*;
        use Role::*;
        matches!(
            (self, class, access),
            (SuperAdmin, _, _)
                | (
                    Support,
                    Platform | Accounts | Technical | Cdrs | Routing | Audit,
                    Read
                )
                | (Sales, Accounts, Read | Write)
                | (CustomerAdmin, Accounts | Technical | Cdrs | Keys, Read)
                | (CustomerAdmin, Technical | Keys | Users, Write | Delete)
                | (CustomerAdmin, Users, Read)
                | (Developer, Accounts | Technical | Cdrs | Keys, Read)
                | (Developer, Technical | Keys, Write)
                | (Billing, Accounts, Read)
                | (ReadOnly, Accounts | Technical | Cdrs, Read)
                | (SipEdge, Snapshot, Read)
        )
    }

    /// Which roles a key of this role may create: never more than itself. A SIP edge's
    /// key reads every trunk's ha1: only the super admin hands one out.
    pub fn may_grant(self, other: Role) -> bool {
        match self {
            Role::SuperAdmin => true,
            Role::CustomerAdmin => other.is_customer(),
            Role::Developer => matches!(other, Role::Developer | Role::ReadOnly),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_only_super_admin_writes_the_platform() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(
                r.allows(Class::Platform, Access::Write),
                r == Role::SuperAdmin
            );
            assert!(r.may_grant(r) || !matches!(r, Role::SuperAdmin | Role::CustomerAdmin));
        }
    }

    #[test]
    fn a_sip_edge_pulls_the_snapshot_and_nothing_else() {
        use Class::*;
        let classes = [
            Platform, Accounts, Technical, Cdrs, Routing, Snapshot, Keys, Audit, Users,
        ];
        for class in classes {
            for access in [Access::Read, Access::Write, Access::Delete] {
                assert_eq!(
                    Role::SipEdge.allows(class, access),
                    (class, access) == (Snapshot, Access::Read),
                    "{class:?} {access:?}"
                );
            }
        }
        // The file holds every ha1: of the people, only the super admin pulls it, and
        // only the super admin makes a key that does.
        for r in Role::ALL {
            let pulls = matches!(r, Role::SuperAdmin | Role::SipEdge);
            assert_eq!(r.allows(Snapshot, Access::Read), pulls, "{r:?}");
            assert_eq!(r.may_grant(Role::SipEdge), r == Role::SuperAdmin, "{r:?}");
            assert_eq!(r.is_machine(), r == Role::SipEdge, "{r:?}");
        }
        assert!(!Role::SipEdge.is_customer());
    }
}
