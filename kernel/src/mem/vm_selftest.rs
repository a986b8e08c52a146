//! The `vm selftest`: proves the kernel's memory rules on the real page tables. It maps pages,
//! writes machine code into one and calls it, and reads, writes and calls pages it has just
//! re-protected or unmapped, through fault-tolerant probes (`arch::probe`), checking that
//! NX pages do not execute, R-X pages reject writes, unmapped pages fault, W^X mappings are
//! refused and 2 MiB pages work end to end.
//!
//! Writing code into memory and calling it is what this test is for, so this module may use
//! `unsafe`: every probe targets a page the test itself mapped and owns.

use alloc::vec::Vec;

use atoll_kcore::addr::{PageSize, VirtAddr};
use atoll_kcore::paging::{MapError, Protection};

use super::vm::{self, VmError};
use crate::arch::probe;

/// Each check's name and whether it passed.
pub type Results = Vec<(&'static str, bool)>;

/// Runs every check; `Err` only when the test could not set itself up.
pub fn run() -> Result<Results, VmError> {
    let before = super::frames::stats();
    let mut c = Checks {
        results: Vec::new(),
    };
    selftest_4k(&mut c)?;
    selftest_2m(&mut c)?;
    selftest_refusals(&mut c)?;
    let after = super::frames::stats();
    // Page tables created on first use stay; data frames must all come back.
    c.check(
        "every data frame was returned",
        after.free + 8 >= before.free,
    );
    Ok(c.results)
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
    let frame = super::frames::alloc(PageSize::Size4K).ok_or(VmError::OutOfFrames)?;
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
    let _ = super::frames::free(frame, PageSize::Size4K);
    Ok(())
}
