//! The PostgreSQL backend. So far: the schema, created and upgraded by
//! weft itself with versioned migrations ([`migrate`]).

mod migrations;

pub use migrations::{MIGRATIONS, Migration, SchemaError, migrate};
