//! The storage seam, being built (docs/architecture.md, "Storage: one
//! seam, two backends"): one interface, a backend per folder. Today the
//! redb backend is still `crate::db`; this module holds the PostgreSQL
//! backend's first part, its schema and migrations.

pub mod postgres;
