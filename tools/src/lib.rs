//! atoll's host tools.

pub mod chunkc;
pub mod qemu;
pub mod relocplot;
pub mod wasi;
