//! The interrupt descriptor table: 256 interrupt gates, each pointing at its own entry stub.
//! One IDT serves every core (IST indices name per-core stacks through each core's TSS).

use core::mem::size_of;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

use super::gdt::{IstSlot, KERNEL_CODE};
use super::trap::stub_address;

/// Named exception vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs, dead_code)] // the full architectural list, not all named in code
pub enum Exception {
    DivideError = 0,
    Debug = 1,
    Nmi = 2,
    Breakpoint = 3,
    Overflow = 4,
    BoundRange = 5,
    InvalidOpcode = 6,
    DeviceNotAvailable = 7,
    DoubleFault = 8,
    InvalidTss = 10,
    SegmentNotPresent = 11,
    StackSegment = 12,
    GeneralProtection = 13,
    PageFault = 14,
    X87Floating = 16,
    AlignmentCheck = 17,
    MachineCheck = 18,
    SimdFloating = 19,
    Virtualization = 20,
    ControlProtection = 21,
}

/// A human name for a vector below 32.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point exception",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point exception",
        20 => "virtualization exception",
        21 => "control protection exception",
        _ => "reserved exception",
    }
}

/// Page-fault error code bits.
mod pf_bits {
    /// The page was present (a protection violation, not a missing page).
    pub const PRESENT: u64 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u64 = 1 << 1;
    /// The access was an instruction fetch.
    pub const FETCH: u64 = 1 << 4;
}

/// Whether a page fault's error code says: a write (not a fetch) to a present page that
/// refused it (the copy-on-write case).
pub fn is_write_to_read_only(code: u64) -> bool {
    code & pf_bits::PRESENT != 0 && code & pf_bits::WRITE != 0 && code & pf_bits::FETCH == 0
}

/// Whether a page fault's error code says: a read or write (not a fetch) of a page that is not
/// present (the demand-paging case).
pub fn is_data_access_to_absent(code: u64) -> bool {
    code & pf_bits::PRESENT == 0 && code & pf_bits::FETCH == 0
}

/// What a page fault's error code says happened.
pub fn page_fault_cause(code: u64) -> &'static str {
    let present = code & pf_bits::PRESENT != 0;
    let write = code & pf_bits::WRITE != 0;
    match (present, write, code & pf_bits::FETCH != 0) {
        (true, _, true) => "instruction fetch from a no-execute page",
        (false, _, true) => "instruction fetch from an unmapped page",
        (false, false, false) => "read of an unmapped page",
        (false, true, false) => "write to an unmapped page",
        (true, false, false) => "read refused by protection",
        (true, true, false) => "write to a read-only page",
    }
}

/// One 16-byte interrupt gate.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    offset_low: u16,
    selector: u16,
    /// Bits 0..3: IST slot + 1, or 0 for the current stack.
    ist: u8,
    /// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const INTERRUPT_GATE_PRESENT: u8 = 0x8e;

impl Gate {
    fn new(handler: u64, ist: Option<IstSlot>) -> Self {
        Self {
            offset_low: handler as u16,
            selector: KERNEL_CODE,
            ist: ist.map_or(0, |s| s as u8 + 1),
            type_attr: INTERRUPT_GATE_PRESENT,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();

fn ist_for(vector: u8) -> Option<IstSlot> {
    match vector {
        v if v == Exception::DoubleFault as u8 => Some(IstSlot::DoubleFault),
        v if v == Exception::Nmi as u8 => Some(IstSlot::Nmi),
        v if v == Exception::MachineCheck as u8 => Some(IstSlot::MachineCheck),
        _ => None,
    }
}

/// Builds the IDT (once) and loads it on this core.
pub fn load_this_core() {
    let idt = IDT.call_once(|| {
        let mut gates = [Gate::default(); 256];
        for (v, gate) in gates.iter_mut().enumerate() {
            let vector = v as u8;
            *gate = Gate::new(stub_address(vector), ist_for(vector));
        }
        Idt(gates)
    });
    let idtr = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the IDT is in a static `Once`, valid forever; every gate points at a stub.
    unsafe { lidt(&idtr) };
}
