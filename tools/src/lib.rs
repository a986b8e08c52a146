//! atoll's host tools.

pub mod chunkc;
pub mod flash;
pub mod qemu;
pub mod relocplot;
pub mod wasi;
