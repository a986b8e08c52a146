//! Fault reports: CPU exceptions, unexpected interrupts and panics print a full report
//! (vector, error code, RIP, CR2, every register, a frame-pointer backtrace) and halt the core
//! cleanly. Reports start with `*** EXCEPTION` or `*** PANIC` and end with `*** halted`, so a
//! host tool can tell them apart from normal output.

use core::sync::atomic::{AtomicU64, Ordering};

use atoll_kcore::addr::{PhysAddr, VirtAddr};
use atoll_kcore::paging::Mapper;

use crate::arch::cpu;
use crate::arch::idt::{Exception, exception_name};
use crate::arch::physmem::DirectMap;
use crate::arch::trap::TrapFrame;
use crate::eprintln;

/// Where the kernel image was loaded (virtual), so reports can print image-relative addresses
/// that `addr2line -e atoll-kernel` understands.
static KERNEL_BASE: AtomicU64 = AtomicU64::new(0);
static KERNEL_END: AtomicU64 = AtomicU64::new(0);

/// Records the kernel image's virtual range.
pub fn set_kernel_image(base: u64, len: u64) {
    KERNEL_BASE.store(base, Ordering::Relaxed);
    KERNEL_END.store(base + len, Ordering::Relaxed);
}

/// The most frames a backtrace prints.
const MAX_FRAMES: usize = 32;

fn describe(addr: u64) -> impl core::fmt::Display {
    struct D(u64, u64, u64);
    impl core::fmt::Display for D {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "{:#018x}", self.0)?;
            if self.1 != 0 && (self.1..self.2).contains(&self.0) {
                write!(f, " (kernel+{:#x})", self.0 - self.1)?;
            }
            Ok(())
        }
    }
    D(
        addr,
        KERNEL_BASE.load(Ordering::Relaxed),
        KERNEL_END.load(Ordering::Relaxed),
    )
}

/// Whether 8 bytes at `addr` can be read without faulting, judged from the live page tables.
fn readable(addr: u64) -> bool {
    if !addr.is_multiple_of(8) || !VirtAddr(addr).is_canonical() {
        return false;
    }
    let mut mem = DirectMap;
    let mapper = Mapper::new(&mut mem, PhysAddr(cpu::cr3() & !0xfff));
    mapper.translate(VirtAddr(addr)).is_some()
}

/// Prints return addresses by following saved frame pointers from `rbp`.
pub fn print_backtrace(first_rip: Option<u64>, mut rbp: u64) {
    eprintln!("backtrace:");
    if let Some(rip) = first_rip {
        eprintln!("  {}", describe(rip));
    }
    for _ in 0..MAX_FRAMES {
        if rbp == 0 || !readable(rbp) || !readable(rbp + 8) {
            break;
        }
        // SAFETY: both words were just found mapped; frame records are plain stack memory.
        let (next, ret) = unsafe { ((rbp as *const u64).read(), ((rbp + 8) as *const u64).read()) };
        if ret == 0 {
            break;
        }
        eprintln!("  {}", describe(ret));
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}

/// Prints the general registers, four to a line. Allocates nothing: a fault taken while the
/// heap lock is held must still be reported.
fn print_registers(frame: &TrapFrame) {
    struct Row<'a>(&'a [(&'static str, u64)]);
    impl core::fmt::Display for Row<'_> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            for (i, (name, value)) in self.0.iter().enumerate() {
                let gap = if i == 0 { "" } else { "  " };
                write!(f, "{gap}{name:>3}={value:#018x}")?;
            }
            Ok(())
        }
    }
    for row in frame.named_registers().chunks(4) {
        eprintln!("{}", Row(row));
    }
}

fn page_fault_kind(code: u64) -> &'static str {
    match (code & 1 != 0, code & 2 != 0, code & 16 != 0) {
        (_, _, true) => {
            if code & 1 != 0 {
                "instruction fetch from a no-execute page"
            } else {
                "instruction fetch from an unmapped page"
            }
        }
        (false, false, false) => "read of an unmapped page",
        (false, true, false) => "write to an unmapped page",
        (true, false, false) => "read refused by protection",
        (true, true, false) => "write to a read-only page",
    }
}

/// Handles a CPU exception that no hook claimed.
pub fn exception(frame: &mut TrapFrame) {
    let vector = frame.vector;
    if vector == Exception::Breakpoint as u64 {
        eprintln!(
            "*** breakpoint at {} on core {}",
            describe(frame.rip),
            crate::arch::percpu::core_id()
        );
        return;
    }
    if vector == Exception::Nmi as u64 {
        log::warn!("NMI not claimed by any handler; continuing");
        return;
    }
    eprintln!(
        "*** EXCEPTION: {} (vector {}) on core {}",
        exception_name(vector),
        vector,
        crate::arch::percpu::core_id()
    );
    eprintln!("error code: {:#x}", frame.error_code);
    eprintln!("rip: {}", describe(frame.rip));
    eprintln!(
        "cs: {:#x}  rflags: {:#x}  rsp: {:#018x}  ss: {:#x}",
        frame.cs, frame.rflags, frame.rsp, frame.ss
    );
    if vector == Exception::PageFault as u64 {
        eprintln!(
            "cr2: {:#018x} ({})",
            cpu::cr2(),
            page_fault_kind(frame.error_code)
        );
    }
    eprintln!(
        "cr0: {:#x}  cr3: {:#x}  cr4: {:#x}",
        cpu::cr0(),
        cpu::cr3(),
        cpu::cr4()
    );
    print_registers(frame);
    print_backtrace(Some(frame.rip), frame.rbp);
    halt()
}

/// Handles an interrupt vector with no handler: reported, then ignored.
pub fn unexpected_interrupt(frame: &mut TrapFrame) {
    log::warn!(
        "unexpected interrupt vector {} at {}",
        frame.vector,
        describe(frame.rip)
    );
}

fn halt() -> ! {
    eprintln!("*** halted");
    cpu::halt_forever()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cpu::disable_interrupts();
    match info.location() {
        Some(l) => eprintln!(
            "*** PANIC: {} at {}:{} on core {}",
            info.message(),
            l.file(),
            l.line(),
            crate::arch::percpu::core_id()
        ),
        None => eprintln!(
            "*** PANIC: {} on core {}",
            info.message(),
            crate::arch::percpu::core_id()
        ),
    }
    print_backtrace(None, cpu::frame_pointer());
    halt()
}
