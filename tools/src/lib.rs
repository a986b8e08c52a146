//! atoll's host tools.

pub mod chunkc;
