//! Who may call the API: organisations, their members with roles, and the tokens members
//! authenticate with. Identifiers are short, lowercase and URL-safe, so they appear verbatim in
//! paths and logs.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::token::TokenId;

/// A role a member holds in its organisation (DESIGN.md, "Users"). Consumers need no account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages the organisation: its members, tokens and devices.
    Admin,
    /// A farm or cooperative: plots, harvests, lots.
    Producer,
    /// Packs and ships: lots, shipments, documents.
    Exporter,
    /// Moves goods: custody events, devices travelling with shipments.
    Carrier,
    /// Inspects and certifies (phytosanitary, quality).
    Inspector,
    /// A customs officer: sees the shipments declared to its authority.
    Customs,
    /// Reads everything, writes nothing.
    Auditor,
}

impl Role {
    /// Every role, in a fixed order (for tests and help texts).
    pub const ALL: [Self; 7] = [
        Self::Admin,
        Self::Producer,
        Self::Exporter,
        Self::Carrier,
        Self::Inspector,
        Self::Customs,
        Self::Auditor,
    ];

    /// The role's name in the API and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Producer => "producer",
            Self::Exporter => "exporter",
            Self::Carrier => "carrier",
            Self::Inspector => "inspector",
            Self::Customs => "customs",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an identifier or a role does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a known role.
    #[error(
        "{0:?} is not a role (admin, producer, exporter, carrier, inspector, customs, auditor)"
    )]
    Role(String),
    /// Not 2 to 63 characters of a-z, 0-9 and inner `-`, `.` or `_`.
    #[error(
        "{0:?} is not a valid identifier: 2 to 63 characters of a-z, 0-9, and '-', '.' or '_' \
         between them"
    )]
    Identifier(String),
}

impl FromStr for Role {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| NameError::Role(text.to_owned()))
    }
}

/// Checks the identifier rule shared by organisations and members.
fn check_identifier(text: &str) -> Result<(), NameError> {
    let bytes = text.as_bytes();
    let inner_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = (2..=63).contains(&bytes.len())
        && bytes.first().copied().is_some_and(inner_ok)
        && bytes.last().copied().is_some_and(inner_ok)
        && bytes
            .iter()
            .all(|&b| inner_ok(b) || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(NameError::Identifier(text.to_owned()))
    }
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The identifier text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                check_identifier(text)?;
                Ok(Self(text.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                check_identifier(&text)?;
                Ok(Self(text))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// An organisation's id, e.g. `menghai-mango-coop` or `cn-customs-kunming`.
    OrgId
);
identifier!(
    /// A member's id within its organisation, e.g. `li.wei`.
    MemberId
);

/// An organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// Its id.
    pub id: OrgId,
    /// Its name as people write it (any script).
    pub name: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// When it was created (Unix ms).
    pub created_ms: u64,
}

/// A member of an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its organisation.
    pub org: OrgId,
    /// Its id there.
    pub id: MemberId,
    /// Its name as people write it.
    pub name: String,
    /// What it may do.
    pub roles: BTreeSet<Role>,
    /// When it was added (Unix ms).
    pub created_ms: u64,
}

/// A stored token: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's public id (16 hex digits).
    #[serde(with = "token_id_hex")]
    pub id: TokenId,
    /// The organisation of its member.
    pub org: OrgId,
    /// The member it authenticates.
    pub member: MemberId,
    /// A label its holder chose ("laptop", "packhouse scanner").
    pub label: String,
    /// SHA-256 of the domain-separated secret, hex.
    #[serde(with = "hash_hex")]
    pub secret_hash: [u8; 32],
    /// When it was issued (Unix ms).
    pub created_ms: u64,
    /// When it was revoked (Unix ms), if it was.
    pub revoked_ms: Option<u64>,
}

/// Who is calling: resolved from a valid, unrevoked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller's organisation.
    pub org: OrgId,
    /// The caller.
    pub member: MemberId,
    /// Its roles.
    pub roles: BTreeSet<Role>,
    /// The token used.
    pub token: TokenId,
}

impl Principal {
    /// Whether the caller holds `role`.
    #[must_use]
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Checks an ISO 3166-1 alpha-2 shape (two upper-case ASCII letters).
#[must_use]
pub fn is_country_code(text: &str) -> bool {
    text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase())
}

mod token_id_hex {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::auth::token::TokenId;

    pub fn serialize<S: Serializer>(id: &TokenId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TokenId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod hash_hex {
    use std::fmt::Write as _;

    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(64);
        for byte in hash {
            let _ = write!(text, "{byte:02x}");
        }
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let hash = ledger::merkle::Hash::from_hex(&text).map_err(serde::de::Error::custom)?;
        Ok(hash.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_one_rule() {
        for good in [
            "ab",
            "menghai-mango-coop",
            "li.wei",
            "a_1",
            "cn-customs-kunming",
        ] {
            assert!(good.parse::<OrgId>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "-ab",
            "ab-",
            "Ab",
            "a b",
            "a/b",
            "é1",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<OrgId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_parse_by_name() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn records_round_trip_through_json() {
        let record = TokenRecord {
            id: TokenId([9; 8]),
            org: "coop".parse().expect("id"),
            member: "li.wei".parse().expect("id"),
            label: "laptop".to_owned(),
            secret_hash: [0xab; 32],
            created_ms: 1,
            revoked_ms: None,
        };
        let json = serde_json::to_string(&record).expect("encode");
        assert!(json.contains("\"0909090909090909\""), "{json}");
        assert_eq!(
            serde_json::from_str::<TokenRecord>(&json).expect("decode"),
            record
        );
        assert!(
            serde_json::from_str::<Member>(
                r#"{"org":"A","id":"x1","name":"","roles":[],"created_ms":0}"#
            )
            .is_err()
        );
    }
}
