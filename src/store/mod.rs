//! The storage seam, being built (docs/architecture.md, "Storage: one
//! seam, two backends"): one interface, a backend per folder. Today the
//! redb backend is still `crate::db`; this module holds where a store is
//! ([`StoreLocation`]) and the PostgreSQL backend's first part, its schema
//! and migrations.

mod location;
pub mod postgres;

pub use location::{LocationError, PgLocation, StoreLocation, TlsMode};
