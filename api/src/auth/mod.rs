//! Organisations, members, roles and API tokens (issue "Traceability API", item 1): the
//! [`model`], the [`token`] format, the [`directory`] in the node's store, and the one
//! [`policy`] every handler asks; [`sharing`] of records between partner organisations.

pub mod directory;
pub mod model;
pub mod policy;
pub mod sharing;
pub mod token;

pub use directory::{AuthError, Directory, DirectoryError};
pub use model::{Member, MemberId, OrgId, Organisation, Principal, Role, TokenRecord};
pub use policy::{Action, Decision, Visibility, authorize};
pub use sharing::{Partners, Partnership};
pub use token::{ApiToken, TokenId};
