//! patchwarden's shared vocabulary: the types every other crate speaks, and the versioned JSON
//! schemas built from them.
//!
//! * The **inventory report** ([`Inventory`], schema version [`INVENTORY_SCHEMA_VERSION`]): what
//!   `patchwarden inventory` prints and what the agent will send to the server.
//! * The **knowledge base** records ([`Advisory`], [`CveRecord`], [`KevEntry`], [`EpssScore`], with
//!   their [`Provenance`]): what feeds produce and matching reads.
//!
//! The inventory report is documented for users in `docs/inventory-schema.md`; a change to a field's
//! meaning or a removal bumps its schema version, an added optional field does not.
//!
//! This crate holds data and the rules that belong to the data (how a distribution release is named);
//! it does no I/O and knows nothing of storage or HTTP.

mod inventory;
mod knowledge;
mod release;

pub use inventory::*;
pub use knowledge::*;
pub use release::*;
