//! The one architecture boundary: everything x86-64-specific lives below here.

pub mod port;
pub mod serial;
