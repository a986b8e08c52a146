//! Per-core GDT and TSS, with separate interrupt stacks (IST) for the double fault, NMI and
//! machine-check vectors, so those run on a known-good stack whatever the interrupted code did.

use alloc::boxed::Box;
use alloc::vec;

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// Which IST slot each special vector uses (the IDT stores slot + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum IstSlot {
    /// Double fault (#DF).
    DoubleFault = 0,
    /// NMI: the stop-the-world path.
    Nmi = 1,
    /// Machine check (#MC).
    MachineCheck = 2,
}

/// Bytes of each IST stack.
pub const IST_STACK_BYTES: usize = 32 * 1024;

/// The kernel code selector, the same on every core.
pub const KERNEL_CODE: u16 = 0x08;

/// The kernel data (stack) selector, the same on every core.
pub const KERNEL_DATA: u16 = 0x10;

/// Builds this core's GDT and TSS (IST stacks from the heap) and loads them.
pub fn init_this_core() {
    let mut tss = Box::new(TaskStateSegment::new());
    for slot in [IstSlot::DoubleFault, IstSlot::Nmi, IstSlot::MachineCheck] {
        let stack = vec![0u8; IST_STACK_BYTES].leak();
        let top = stack.as_ptr() as u64 + IST_STACK_BYTES as u64;
        tss.interrupt_stack_table[slot as usize] = VirtAddr::new(top & !0xf);
    }
    let tss: &'static TaskStateSegment = Box::leak(tss);
    let gdt = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    debug_assert_eq!(code.0, KERNEL_CODE);
    debug_assert_eq!(data.0, KERNEL_DATA);
    gdt.load();
    // SAFETY: the GDT just loaded holds these descriptors; it and the TSS are leaked, so they
    // outlive every use.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_sel);
    }
}
