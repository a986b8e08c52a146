//! Fault reports: CPU exceptions, unexpected interrupts and panics print a full report
//! (vector, error code, RIP, CR2, every register, a frame-pointer backtrace) and halt the core
//! cleanly. Reports start with `*** EXCEPTION` or `*** PANIC` and end with `*** halted`, so a
//! host tool can tell them apart from normal output.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::idt::{Exception, exception_name, page_fault_cause};
use crate::arch::trap::TrapFrame;
use crate::arch::{backtrace, cpu};
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

/// Prints return addresses by following saved frame pointers from `rbp`.
pub fn print_backtrace(first_rip: Option<u64>, rbp: u64) {
    eprintln!("backtrace:");
    if let Some(rip) = first_rip {
        eprintln!("  {}", describe(rip));
    }
    for ret in backtrace::return_addresses(rbp).take(MAX_FRAMES) {
        eprintln!("  {}", describe(ret));
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

/// Handles a CPU exception that no hook claimed.
pub fn exception(frame: &mut TrapFrame) {
    let vector = frame.vector;
    // A jump into code an island has left (filled with `int3`, or unmapped): never go on.
    let fetched = if vector == Exception::Breakpoint as u64 {
        frame.rip.wrapping_sub(1)
    } else {
        frame.rip
    };
    let stale = crate::island::report_stale(fetched);
    if vector == Exception::Breakpoint as u64 && !stale {
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
            page_fault_cause(frame.error_code)
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
