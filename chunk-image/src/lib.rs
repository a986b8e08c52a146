//! atoll's chunk-image format (placeholder until the chunk-image work lands).
#![cfg_attr(not(test), no_std)]
