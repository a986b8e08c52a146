//! The one architecture boundary: everything x86-64-specific lives below here.

pub mod apic;
pub mod cpu;
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
pub mod serial;
pub mod trampoline;
pub mod trap;
pub mod tsc;
pub mod vectors;
