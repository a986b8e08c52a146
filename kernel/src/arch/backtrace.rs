//! Frame-pointer backtraces: return addresses found by following the saved RBP chain (the
//! kernel is built with frame pointers). Every frame record is checked against the live page
//! tables before it is read, so a corrupt chain ends the walk instead of faulting again.

use atoll_kcore::addr::VirtAddr;

use super::physmem;

/// Whether 8 bytes at `addr` can be read without faulting, judged from the live page tables.
fn readable(addr: u64) -> bool {
    addr.is_multiple_of(8)
        && VirtAddr(addr).is_canonical()
        && physmem::translate(VirtAddr(addr)).is_some()
}

/// The return addresses of the frames above the one whose saved RBP is `rbp`, innermost first.
pub fn return_addresses(rbp: u64) -> ReturnAddresses {
    ReturnAddresses { rbp }
}

/// The walk of [`return_addresses`].
#[derive(Debug, Clone)]
pub struct ReturnAddresses {
    /// The next frame record (0: the walk is over).
    rbp: u64,
}

impl Iterator for ReturnAddresses {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let rbp = self.rbp;
        if rbp == 0 || !readable(rbp) || !readable(rbp + 8) {
            return None;
        }
        // SAFETY: both words were just found mapped and 8-byte aligned; a frame record is plain
        // stack memory (a read has no side effect).
        let (next, ret) = unsafe { ((rbp as *const u64).read(), ((rbp + 8) as *const u64).read()) };
        if ret == 0 {
            self.rbp = 0;
            return None;
        }
        // Frames grow towards lower addresses: the caller's record is above this one.
        self.rbp = if next > rbp { next } else { 0 };
        Some(ret)
    }
}
