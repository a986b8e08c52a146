//! Kernel logic that needs no hardware, tested on the host with plain `cargo test`.
//!
//! Everything here is policy or data-structure code: the console's line editor and argument
//! parsing, the JSON writer for `--json` output, the physical frame allocator, the page-table
//! mapper (over an abstract physical memory), the `\_S5` decoder, the SRAT/SLIT decoder and the
//! NUMA topology built from them, the scheduler's policy, the interrupt-safe byte ring and
//! sample statistics, CPUID decoding. The kernel wraps each with
//! the hardware access it needs; none of it uses `unsafe`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod addr;
pub mod args;
pub mod calendar;
pub mod cpuinfo;
pub mod font;
pub mod frames;
pub mod json;
pub mod line_editor;
pub mod numa;
pub mod paging;
pub mod ring;
pub mod s5;
pub mod scancode;
pub mod sched;
pub mod srat;
pub mod stats;
pub mod textscreen;
