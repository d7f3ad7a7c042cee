//! Rapport's domain: the things a business person would recognise (contacts, companies,
//! relations, notes, custom fields, users) with their rules. Values are parsed once at the
//! edge ("parse, don't validate"); everything past the edge trusts its types.
//!
//! No IO, no async, no SQL, no HTTP live here.

pub mod birthday;
pub mod campaign;
pub mod company;
pub mod consent;
pub mod contact;
pub mod custom_field;
pub mod email;
pub mod error;
pub mod event;
pub mod id;
pub mod key;
pub mod message;
pub mod money;
pub mod note;
pub mod patch;
pub mod phone;
pub mod profile;
pub mod relation;
pub mod segment;
pub mod tag;
pub mod task;
pub mod text;
pub mod user;
pub mod workflow;

pub use birthday::Birthday;
pub use email::EmailAddress;
pub use error::{FieldError, ValidationErrors};
pub use id::new_id;
pub use patch::Patch;
pub use phone::{PhoneNumber, PhoneRegion};

/// A point in time, always UTC. Each contact carries its own time zone for local dates.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

pub mod clock;
pub use clock::{Clock, ManualClock, SystemClock, parse_iso_duration};
