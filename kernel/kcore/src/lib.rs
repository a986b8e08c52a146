//! Kernel logic that needs no hardware, tested on the host with plain `cargo test`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;
