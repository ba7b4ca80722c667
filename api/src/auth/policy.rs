//! Authorisation in one place: every handler names the [`Action`] it performs and the
//! organisation it acts on, and [`authorize`] alone decides. What a permitted reader may *see*
//! of shared data (its own organisation's, its partners', the shipments declared to its
//! customs authority, or everything for an auditor) is [`Visibility`], also decided here.

use std::collections::BTreeSet;

use super::model::{OrgId, Principal, Role};

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Public reads: the log, the Digital Link resolver, consumer pages. No account needed.
    ReadPublic,
    /// Read one's own organisation, its members and tokens.
    ReadOrg,
    /// Add members, issue and revoke tokens of one's own organisation.
    ManageOrg,
    /// Create or change products, locations and plots of one's own organisation.
    WriteMasterData,
    /// Register, rotate or revoke devices of one's own organisation.
    ManageDevices,
    /// Create lots of one's own organisation.
    WriteLots,
    /// Create and declare shipments of one's own organisation.
    WriteShipments,
    /// Capture EPCIS events as one's own organisation.
    CaptureEvents,
    /// Read records (events, lots, shipments, readings), filtered by [`Visibility`].
    ReadRecords,
    /// Trace and recall, filtered by [`Visibility`].
    Trace,
    /// Read the quarantine and health of one's own organisation's devices.
    ReadDeviceHealth,
    /// Upload trade documents (as one's own organisation; the issuer signs them).
    UploadDocuments,
    /// Sign trade documents as their issuer (one's own organisation), with its issuer keys.
    SignDocuments,
}

impl Action {
    /// Every action (for the authorisation matrix test and documentation).
    pub const ALL: [Self; 13] = [
        Self::ReadPublic,
        Self::ReadOrg,
        Self::ManageOrg,
        Self::WriteMasterData,
        Self::ManageDevices,
        Self::WriteLots,
        Self::WriteShipments,
        Self::CaptureEvents,
        Self::ReadRecords,
        Self::Trace,
        Self::ReadDeviceHealth,
        Self::UploadDocuments,
        Self::SignDocuments,
    ];

    /// The roles that may perform it (within their own organisation where it names one).
    #[must_use]
    pub fn roles(self) -> &'static [Role] {
        use Role::{Admin, Auditor, Carrier, Customs, Exporter, Inspector, Producer};
        match self {
            Self::ReadPublic => &[],
            Self::ReadOrg => &[
                Admin, Producer, Exporter, Carrier, Inspector, Customs, Auditor,
            ],
            Self::ManageOrg => &[Admin],
            Self::WriteMasterData => &[Admin, Producer, Exporter],
            Self::ManageDevices => &[Admin, Producer, Exporter, Carrier],
            Self::WriteLots => &[Producer, Exporter],
            Self::WriteShipments => &[Exporter],
            Self::CaptureEvents => &[Producer, Exporter, Carrier, Inspector, Customs],
            Self::ReadRecords | Self::Trace => &[
                Admin, Producer, Exporter, Carrier, Inspector, Customs, Auditor,
            ],
            Self::ReadDeviceHealth => &[Admin, Producer, Exporter, Carrier, Auditor],
            Self::UploadDocuments => &[Admin, Producer, Exporter, Carrier, Inspector, Customs],
            Self::SignDocuments => &[Admin, Producer, Exporter, Inspector, Customs],
        }
    }

    /// Whether an auditor may perform it on any organisation (reads only).
    fn auditor_reads_everywhere(self) -> bool {
        matches!(
            self,
            Self::ReadOrg | Self::ReadRecords | Self::Trace | Self::ReadDeviceHealth
        )
    }
}

/// Roles only the node's operator grants (`agritrace admin add-member`, loopback only): they
/// read across organisations (an auditor everything, a customs officer the shipments declared
/// to its authority and their provenance), so an organisation's own admin must not be able to
/// give them to itself.
pub const OPERATOR_GRANTED: [Role; 2] = [Role::Auditor, Role::Customs];

/// The answer to "may this caller do this?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// No (valid) token where one is needed: 401.
    Unauthenticated,
    /// Authenticated, but not allowed: 403, with the reason shown to the caller.
    Forbidden(String),
}

/// Decides whether `principal` (`None`: no token) may perform `action` on the organisation
/// `target` (`None` when the action names none, e.g. reading shared records).
#[must_use]
pub fn authorize(
    principal: Option<&Principal>,
    action: Action,
    target: Option<&OrgId>,
) -> Decision {
    if action == Action::ReadPublic {
        return Decision::Allow;
    }
    let Some(principal) = principal else {
        return Decision::Unauthenticated;
    };
    let roles = action.roles();
    let held: Vec<Role> = roles
        .iter()
        .copied()
        .filter(|r| principal.has(*r))
        .collect();
    if held.is_empty() {
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        return Decision::Forbidden(format!("this needs one of the roles {}", names.join(", ")));
    }
    match target {
        Some(org) if *org != principal.org => {
            if action.auditor_reads_everywhere() && principal.has(Role::Auditor) {
                Decision::Allow
            } else {
                Decision::Forbidden(format!(
                    "members of {} may not do this for {org}",
                    principal.org
                ))
            }
        }
        _ => Decision::Allow,
    }
}

/// Which shared records a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Everything (auditors).
    All,
    /// Records of these organisations (its own and the partners that shared with it), and
    /// shipments declared to any of `authorities` (its own organisation when it is a customs
    /// authority).
    Scoped {
        /// Organisations whose records it sees.
        orgs: BTreeSet<OrgId>,
        /// Customs authorities whose declared shipments it sees.
        authorities: BTreeSet<OrgId>,
    },
}

impl Visibility {
    /// What `principal` may see, given the organisations that shared their records with its
    /// organisation.
    #[must_use]
    pub fn of(principal: &Principal, partners: impl IntoIterator<Item = OrgId>) -> Self {
        if principal.has(Role::Auditor) {
            return Self::All;
        }
        let mut orgs: BTreeSet<OrgId> = partners.into_iter().collect();
        orgs.insert(principal.org.clone());
        let authorities = if principal.has(Role::Customs) {
            BTreeSet::from([principal.org.clone()])
        } else {
            BTreeSet::new()
        };
        Self::Scoped { orgs, authorities }
    }

    /// Whether a record owned by `owner` (and, for a shipment, declared to `declared_to`) is
    /// visible.
    #[must_use]
    pub fn sees(&self, owner: &OrgId, declared_to: &[OrgId]) -> bool {
        match self {
            Self::All => true,
            Self::Scoped { orgs, authorities } => {
                orgs.contains(owner) || declared_to.iter().any(|a| authorities.contains(a))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::TokenId;

    fn principal(org: &str, roles: &[Role]) -> Principal {
        Principal {
            org: org.parse().expect("org"),
            member: "m1".parse().expect("member"),
            roles: roles.iter().copied().collect(),
            token: TokenId([0; 8]),
        }
    }

    /// The matrix, written out by hand (not derived from `Action::roles`): for each action,
    /// the roles allowed in their own organisation, and whether an auditor may act on another.
    const MATRIX: [(Action, &str, bool); 13] = [
        (Action::ReadPublic, "*", true),
        (
            Action::ReadOrg,
            "admin producer exporter carrier inspector customs auditor",
            true,
        ),
        (Action::ManageOrg, "admin", false),
        (Action::WriteMasterData, "admin producer exporter", false),
        (
            Action::ManageDevices,
            "admin producer exporter carrier",
            false,
        ),
        (Action::WriteLots, "producer exporter", false),
        (Action::WriteShipments, "exporter", false),
        (
            Action::CaptureEvents,
            "producer exporter carrier inspector customs",
            false,
        ),
        (
            Action::ReadRecords,
            "admin producer exporter carrier inspector customs auditor",
            true,
        ),
        (
            Action::Trace,
            "admin producer exporter carrier inspector customs auditor",
            true,
        ),
        (
            Action::ReadDeviceHealth,
            "admin producer exporter carrier auditor",
            true,
        ),
        (
            Action::UploadDocuments,
            "admin producer exporter carrier inspector customs",
            false,
        ),
        (
            Action::SignDocuments,
            "admin producer exporter inspector customs",
            false,
        ),
    ];

    #[test]
    fn every_role_against_every_action_in_its_own_and_another_organisation() {
        let own: OrgId = "coop".parse().expect("org");
        let other: OrgId = "rival".parse().expect("org");
        assert_eq!(MATRIX.len(), Action::ALL.len());
        for (action, allowed, auditor_elsewhere) in MATRIX {
            let public = allowed == "*";
            assert_eq!(
                authorize(None, action, Some(&own)),
                if public {
                    Decision::Allow
                } else {
                    Decision::Unauthenticated
                },
                "{action:?} without a token"
            );
            for role in Role::ALL {
                let caller = principal("coop", &[role]);
                let may = public || allowed.split(' ').any(|r| r == role.name());
                let at_home = authorize(Some(&caller), action, Some(&own));
                assert_eq!(
                    at_home == Decision::Allow,
                    may,
                    "{role} {action:?} at home: {at_home:?}"
                );
                let elsewhere = authorize(Some(&caller), action, Some(&other));
                let may_elsewhere = public || (may && role == Role::Auditor && auditor_elsewhere);
                assert_eq!(
                    elsewhere == Decision::Allow,
                    may_elsewhere,
                    "{role} {action:?} in another organisation: {elsewhere:?}"
                );
            }
        }
    }

    #[test]
    fn visibility_follows_ownership_partnership_declaration_and_audit() {
        let coop: OrgId = "coop".parse().expect("org");
        let partner: OrgId = "packer".parse().expect("org");
        let customs: OrgId = "cn-customs".parse().expect("org");
        let stranger: OrgId = "stranger".parse().expect("org");
        let producer = Visibility::of(&principal("coop", &[Role::Producer]), [partner.clone()]);
        assert!(producer.sees(&coop, &[]));
        assert!(producer.sees(&partner, &[]));
        assert!(!producer.sees(&stranger, std::slice::from_ref(&customs)));
        let officer = Visibility::of(&principal("cn-customs", &[Role::Customs]), []);
        assert!(officer.sees(&stranger, std::slice::from_ref(&customs)));
        assert!(!officer.sees(&stranger, &[]));
        let auditor = Visibility::of(&principal("audit-office", &[Role::Auditor]), []);
        assert!(auditor.sees(&stranger, &[]));
    }
}
