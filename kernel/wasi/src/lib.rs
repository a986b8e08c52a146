//! atoll's WASI preview1 subset (`wasi_snapshot_preview1`), shared by the kernel and by
//! `chunkc`'s engines (wasmi and atoll's own code generator on the host), so every engine runs
//! the same WASI code and differs only in how it executes WebAssembly.
//!
//! - [`abi`]: function names, signatures, constants and struct layouts.
//! - [`Guest`]: linear memory as a checked byte slice; every pointer and length a program
//!   passes goes through it, so a bad one is `EFAULT` and never a fault of the host.
//! - [`Tree`]: a read-only file tree (files shipped in a chunk image, or a host directory's
//!   snapshot) with path resolution that cannot leave its preopened directory.
//! - [`WasiCtx`]: arguments, environment, descriptors, standard input and the exit code, and
//!   [`WasiCtx::call`], which implements every function of the subset; the rest return
//!   `ENOSYS` (writes to the tree return `EROFS`). Clocks, randomness and output go through
//!   the [`System`] the embedder supplies.
//! - `poll_oneoff` (clock and descriptor subscriptions) and [`env`] (a chunk's default
//!   environment with `--env` settings on top).
//! - `pae_link` (feature `pae`): binds the functions as host functions of atoll-pae's
//!   generated code; `proc_exit` leaves generated code as a host trap and sets the exit code.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod abi;
mod ctx;
pub mod env;
mod errno;
pub mod fds;
mod guest;
#[cfg(feature = "pae")]
#[allow(unsafe_code)]
pub mod pae_link;
pub mod tree;

pub use abi::{Func, MODULE};
pub use ctx::poll::{EVENT_BYTES, SUBSCRIPTION_BYTES};
pub use ctx::{Exit, System, WasiCtx};
pub use errno::Errno;
pub use guest::Guest;
pub use tree::{Node, Tree, TreeError};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_poll;
