//! SCIM protocol pieces that know nothing of tenants or stores.
pub mod etag;
pub mod filter;
pub mod patch;
pub mod projection;
pub mod schema;
