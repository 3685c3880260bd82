//! Gate bundles: the format, signatures and trust live in
//! [`omk_core::bundle`] (re-exported here); this module adds [`oci`],
//! pushing and pulling bundles through an OCI registry.

pub use omk_core::bundle::*;

pub mod oci;
