//! The one architecture boundary: everything x86-64-specific lives below here, behind safe
//! functions and types that are unsafe only to create (ports, register blocks). The rest of the
//! kernel denies `unsafe_code` (see `main.rs` for the few exceptions).
//!
//! Nothing here calls up into the kernel: the fault reports, the NMI handler and the probe
//! fixups are installed into `trap` at boot.

pub mod acpi_tables;
pub mod apic;
pub mod backtrace;
pub mod bootinfo;
pub mod context;
pub mod cpu;
pub mod debug;
pub mod fpu;
pub mod fwcfg;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod mmio;
pub mod percpu;
pub mod physmem;
pub mod pit;
pub mod port;
pub mod power;
pub mod probe;
pub mod ps2;
pub mod rtc;
pub mod serial;
pub mod trampoline;
pub mod trap;
pub mod tsc;
pub mod vectors;
