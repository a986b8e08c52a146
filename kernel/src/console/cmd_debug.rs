//! Debugging commands: `fault` (deliberate faults, to see the reports) and `vm` (the kernel's
//! virtual-memory figures and a self-test on real page tables).

use alloc::string::String;
use alloc::vec::Vec;

use atoll_kcore::addr::{PageSize, VirtAddr};
use atoll_kcore::args::{ArgError, Args};
use atoll_kcore::json::Json;
use atoll_kcore::paging::{MapError, Protection};

use super::commands::{CmdError, CmdResult};
use crate::arch::probe;
use crate::mem::vm::{self, VmError};
use crate::println;

/// The address `fault pagefault` reads: canonical, never mapped.
const UNMAPPED_ADDR: u64 = 0x0dea_dbee_f000;
/// A non-canonical address: reading it raises #GP.
const NON_CANONICAL_ADDR: u64 = 0x8000_0000_0000_0000;

const FAULT_KINDS: &str = "fault kind (pagefault, heap-locked, gp, ud, divide, breakpoint, panic)";

/// Reads a canonical address that is never mapped: a page fault.
fn read_unmapped() {
    // SAFETY: deliberately unsound on purpose: the read faults and the kernel halts with a
    // report, which is what this debug command is for.
    let v = unsafe { (UNMAPPED_ADDR as *const u64).read_volatile() };
    println!("read {v:#x}?");
}

pub fn fault(args: &mut Args) -> CmdResult {
    let kind = args.required(FAULT_KINDS)?;
    args.finish()?;
    match kind.as_str() {
        "pagefault" => read_unmapped(),
        // The report must come out although the heap is locked: it allocates nothing.
        "heap-locked" => crate::mem::heap::with_lock_held(read_unmapped),
        "gp" => {
            // SAFETY: as above: a non-canonical access raises #GP and the kernel halts.
            let v = unsafe { (NON_CANONICAL_ADDR as *const u64).read_volatile() };
            println!("read {v:#x}?");
        }
        // SAFETY: ud2 raises #UD by definition; the kernel reports and halts.
        "ud" => unsafe { core::arch::asm!("ud2") },
        "divide" => {
            // SAFETY: dividing by zero with `div` raises #DE; the kernel reports and halts.
            unsafe {
                core::arch::asm!("xor edx, edx", "xor ecx, ecx", "mov eax, 1", "div ecx", out("eax") _, out("edx") _, out("ecx") _)
            };
        }
        // SAFETY: int3 raises #BP, which is reported and resumed.
        "breakpoint" => unsafe { core::arch::asm!("int3") },
        "panic" => panic!("deliberate panic from the console"),
        other => {
            return Err(CmdError::Args(ArgError::Invalid {
                what: FAULT_KINDS,
                value: String::from(other),
            }));
        }
    }
    Ok(())
}

pub fn vm(args: &mut Args) -> CmdResult {
    let json = args.flag("--json");
    let sub = args.positional();
    args.finish()?;
    match sub.as_deref() {
        None => {
            let s = vm::stats();
            if json {
                let mut j = Json::new();
                j.begin_object()
                    .u64("region_base", s.region_base)
                    .u64("reserved_bytes", s.reserved_bytes)
                    .u64("pages_4k", s.pages_4k)
                    .u64("pages_2m", s.pages_2m)
                    .end_object();
                println!("{}", j.finish());
            } else {
                println!(
                    "kernel region at {:#x}: {} bytes reserved, {} 4K pages and {} 2M pages mapped",
                    s.region_base, s.reserved_bytes, s.pages_4k, s.pages_2m
                );
            }
            Ok(())
        }
        Some("selftest") => selftest(json),
        Some(other) => Err(CmdError::Args(ArgError::UnexpectedArgument(String::from(
            other,
        )))),
    }
}

/// Machine code for `mov eax, 42; ret`.
const RETURN_42: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];

struct Checks {
    results: Vec<(&'static str, bool)>,
}

impl Checks {
    fn check(&mut self, name: &'static str, ok: bool) {
        self.results.push((name, ok));
    }
}

fn can_read(addr: u64) -> bool {
    // SAFETY: the addresses probed are pages this self-test mapped (or just unmapped): RAM.
    unsafe { probe::read_u8(addr) }.is_ok()
}

fn can_write(addr: u64) -> bool {
    // SAFETY: the addresses probed are pages this self-test owns; writing them is harmless.
    unsafe { probe::write_u8(addr, 0x5a) }.is_ok()
}

fn call_returns(addr: u64) -> Option<u64> {
    // SAFETY: the page at `addr` holds RETURN_42 (written by this self-test) or faults.
    unsafe { probe::call(addr) }.ok()
}

fn selftest_4k(c: &mut Checks) -> Result<(), VmError> {
    let (va, _) = vm::map_new(PageSize::Size4K, Protection::READ_WRITE)?;
    let t = vm::translate(va);
    c.check(
        "4K map_new gives a 4K rw- page",
        t.is_some_and(|t| t.page_bytes == 4096 && t.protection == Protection::READ_WRITE),
    );
    // SAFETY: the page was just mapped writable and belongs to this test.
    unsafe { core::ptr::copy_nonoverlapping(RETURN_42.as_ptr(), va.0 as *mut u8, RETURN_42.len()) };
    c.check(
        "4K rw- page is readable and writable",
        can_read(va.0) && can_write(va.0 + 100),
    );
    c.check(
        "4K rw- page does not execute (NX)",
        call_returns(va.0).is_none(),
    );
    vm::protect(va, PageSize::Size4K, Protection::READ_EXEC)?;
    c.check(
        "after protect r-x: code runs and returns 42",
        call_returns(va.0) == Some(42),
    );
    c.check("after protect r-x: writes fault", !can_write(va.0 + 100));
    vm::protect(va, PageSize::Size4K, Protection::READ)?;
    c.check(
        "after protect r--: reads work, writes and calls fault",
        can_read(va.0) && !can_write(va.0) && call_returns(va.0).is_none(),
    );
    c.check(
        "protect to rwx is refused (W^X)",
        vm::protect(
            va,
            PageSize::Size4K,
            Protection {
                write: true,
                exec: true,
            },
        ) == Err(VmError::Map(MapError::WritableAndExecutable)),
    );
    vm::unmap_free(va, PageSize::Size4K)?;
    c.check("after unmap: reads fault", !can_read(va.0));
    Ok(())
}

fn selftest_2m(c: &mut Checks) -> Result<(), VmError> {
    let (va, _) = vm::map_new(PageSize::Size2M, Protection::READ_WRITE)?;
    let last = va.0 + PageSize::Size2M.bytes() - 1;
    c.check(
        "2M map_new gives one 2M page",
        vm::translate(VirtAddr(last)).is_some_and(|t| t.page_bytes == PageSize::Size2M.bytes()),
    );
    c.check(
        "2M page is writable from first to last byte",
        can_write(va.0) && can_write(last),
    );
    // SAFETY: the page is mapped writable and belongs to this test.
    unsafe {
        core::ptr::copy_nonoverlapping(
            RETURN_42.as_ptr(),
            (va.0 + 0x1000) as *mut u8,
            RETURN_42.len(),
        )
    };
    vm::protect(va, PageSize::Size2M, Protection::READ_EXEC)?;
    c.check(
        "2M r-x: code runs, writes fault",
        call_returns(va.0 + 0x1000) == Some(42) && !can_write(last),
    );
    c.check(
        "2M page cannot be unmapped as 4K",
        matches!(
            vm::unmap(va, PageSize::Size4K),
            Err(VmError::Map(MapError::SizeMismatch(_)))
        ),
    );
    vm::unmap_free(va, PageSize::Size2M)?;
    c.check(
        "after 2M unmap: reads fault",
        !can_read(va.0) && !can_read(last),
    );
    Ok(())
}

fn selftest_refusals(c: &mut Checks) -> Result<(), VmError> {
    let va = vm::reserve(4096, 4096)?;
    let frame = crate::mem::frames::alloc(PageSize::Size4K).ok_or(VmError::OutOfFrames)?;
    let rwx = Protection {
        write: true,
        exec: true,
    };
    c.check(
        "map rwx is refused (W^X)",
        vm::map(va, frame, PageSize::Size4K, rwx)
            == Err(VmError::Map(MapError::WritableAndExecutable)),
    );
    c.check(
        "a refused mapping leaves nothing mapped",
        vm::translate(va).is_none(),
    );
    c.check(
        "misaligned 2M map is refused",
        vm::map(va, frame, PageSize::Size2M, Protection::READ)
            == Err(VmError::Map(MapError::Misaligned)),
    );
    let _ = crate::mem::frames::free(frame, PageSize::Size4K);
    Ok(())
}

fn selftest(json: bool) -> CmdResult {
    let before = crate::mem::frames::stats();
    let mut c = Checks {
        results: Vec::new(),
    };
    selftest_4k(&mut c)?;
    selftest_2m(&mut c)?;
    selftest_refusals(&mut c)?;
    let after = crate::mem::frames::stats();
    // Page tables created on first use stay; data frames must all come back.
    c.check(
        "every data frame was returned",
        after.free + 8 >= before.free,
    );
    let failed = c.results.iter().filter(|(_, ok)| !ok).count();
    if json {
        let mut j = Json::new();
        j.begin_object()
            .u64("checks", c.results.len() as u64)
            .u64("passed", (c.results.len() - failed) as u64)
            .u64("failed", failed as u64)
            .array("results");
        for (name, ok) in &c.results {
            j.begin_object()
                .str("name", name)
                .bool("ok", *ok)
                .end_object();
        }
        j.end_array().end_object();
        println!("{}", j.finish());
    } else {
        for (name, ok) in &c.results {
            println!("  {} {}", if *ok { "ok  " } else { "FAIL" }, name);
        }
        println!(
            "vm selftest: {} passed, {} failed",
            c.results.len() - failed,
            failed
        );
    }
    if failed > 0 {
        return Err(CmdError::Failed(alloc::format!(
            "vm selftest: {failed} checks failed"
        )));
    }
    Ok(())
}
