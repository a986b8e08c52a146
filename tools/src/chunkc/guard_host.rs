//! Guard-page linear memory on the host, for code compiled with `Options::guard_pages`.
//!
//! A [`GuardMemory`] reserves `GUARD_RESERVE_BYTES` with `mmap(PROT_NONE)` and makes only its
//! current size read-write (`mprotect` on growth), so an access past the end raises `SIGSEGV`.
//! The process-wide handler installed here turns that signal into the wasm out-of-bounds trap
//! when, and only when, it is one: the faulting instruction lies in generated code (every
//! executable mapping of `host_code` is registered here), the address lies in a live
//! reservation past its accessible size, and `r15` (the memory base register of generated code)
//! is that reservation's base. It then sets `eax` to `TrapCode::MemoryOutOfBounds` and resumes
//! at the trap exit the VM context in `r14` names, exactly where a trap stub would have jumped.
//! Any other `SIGSEGV` goes to the handler that was installed before (Rust's stack-overflow
//! report) or to the default action.
//!
//! The registries are fixed arrays of atomics: the handler takes no lock and allocates nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use atoll_pae::TrapCode;
use atoll_pae::runtime::{GUARD_RESERVE_BYTES, LinearMemory};
use atoll_pae::vmctx::off;

/// Slots of each registry (live code mappings; live reservations).
const CODE_SLOTS: usize = 8192;
const MEMORY_SLOTS: usize = 1024;

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicUsize = AtomicUsize::new(0);
/// `(start, end)` of each live executable mapping; start 0 = free slot.
static CODE_START: [AtomicUsize; CODE_SLOTS] = [ZERO; CODE_SLOTS];
static CODE_END: [AtomicUsize; CODE_SLOTS] = [ZERO; CODE_SLOTS];
/// Base and accessible size of each live reservation; base 0 = free slot.
static MEM_BASE: [AtomicUsize; MEMORY_SLOTS] = [ZERO; MEMORY_SLOTS];
static MEM_SIZE: [AtomicUsize; MEMORY_SLOTS] = [ZERO; MEMORY_SLOTS];
/// Out-of-bounds accesses turned into traps since the process started.
static GUARD_TRAPS: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();
/// The `SIGSEGV` action before ours (chained to for faults that are not ours).
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Out-of-bounds traps delivered through the signal handler since the process started.
pub fn guard_traps() -> u64 {
    GUARD_TRAPS.load(Ordering::Relaxed)
}

fn claim(starts: &[AtomicUsize], value: usize) -> Option<usize> {
    starts.iter().position(|s| {
        s.compare_exchange(0, value, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Registers `[start, start + len)` as generated code; returns the slot for
/// [`unregister_code`], or `None` when the registry is full (a guard fault there would then
/// not be recognized and would end the process, never run on).
pub(crate) fn register_code(start: usize, len: usize) -> Option<usize> {
    let slot = claim(&CODE_START, usize::MAX)?;
    CODE_END[slot].store(start + len, Ordering::Release);
    CODE_START[slot].store(start, Ordering::Release);
    Some(slot)
}

/// Forgets a range [`register_code`] returned `slot` for.
pub(crate) fn unregister_code(slot: usize) {
    CODE_START[slot].store(0, Ordering::Release);
}

fn in_code(rip: usize) -> bool {
    CODE_START.iter().zip(&CODE_END).any(|(s, e)| {
        let start = s.load(Ordering::Acquire);
        start != 0 && start != usize::MAX && rip >= start && rip < e.load(Ordering::Acquire)
    })
}

/// The reservation `addr` falls in past its accessible size, if any: its base.
fn guard_hit(addr: usize) -> Option<usize> {
    MEM_BASE.iter().zip(&MEM_SIZE).find_map(|(b, s)| {
        let base = b.load(Ordering::Acquire);
        let in_guard = base != 0
            && addr >= base + s.load(Ordering::Acquire)
            && addr < base + GUARD_RESERVE_BYTES as usize;
        in_guard.then_some(base)
    })
}

extern "C" fn on_sigsegv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler; only
    // registers of the interrupted context are read and written.
    unsafe {
        let addr = (*info).si_addr() as usize;
        let uc = ctx.cast::<libc::ucontext_t>();
        let gregs = &mut (*uc).uc_mcontext.gregs;
        let rip = gregs[libc::REG_RIP as usize] as usize;
        let r15 = gregs[libc::REG_R15 as usize] as usize;
        let r14 = gregs[libc::REG_R14 as usize] as usize;
        if in_code(rip) && guard_hit(addr) == Some(r15) && r14 != 0 {
            // r14 is the VM context in generated code; its memory base is the faulting memory.
            let vmctx = r14 as *const u64;
            let base = vmctx.byte_add(off::MEMORY_BASE as usize).read();
            if base as usize == r15 {
                let exit = vmctx.byte_add(off::TRAP_EXIT as usize).read();
                gregs[libc::REG_RAX as usize] = TrapCode::MemoryOutOfBounds as i64;
                gregs[libc::REG_RIP as usize] = exit as i64;
                GUARD_TRAPS.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        chain(sig, info, ctx);
    }
}

/// Hands a fault that is not ours to the previous action.
///
/// # Safety
/// Called from the signal handler with its arguments.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    match PREVIOUS.get() {
        Some(p)
            if p.sa_sigaction != libc::SIG_DFL
                && p.sa_sigaction != libc::SIG_IGN
                && p.sa_flags & libc::SA_SIGINFO != 0 =>
        {
            // SAFETY: the previous SA_SIGINFO handler, called as the kernel would have.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(p.sa_sigaction) };
            f(sig, info, ctx);
        }
        _ => {
            // Default action: returning re-executes the access, which then kills the process.
            // SAFETY: resets the action to the default, an async-signal-safe call.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Installs the `SIGSEGV` handler (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a plain sigaction call with a zeroed, then filled, action; the previous action
        // is stored before ours can run (call_once orders it).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut old);
            let _ = PREVIOUS.set(old);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigsegv as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()),
                0,
                "installing the SIGSEGV handler"
            );
        }
    });
}

/// A linear memory in a guard-page reservation (see the module).
#[derive(Debug)]
pub struct GuardMemory {
    base: *mut u8,
    size: usize,
    slot: usize,
}

impl GuardMemory {
    /// Reserves the address space (nothing accessible yet) and installs the handler.
    pub fn new() -> std::io::Result<Self> {
        install();
        // SAFETY: an anonymous private reservation with no address hint, inaccessible; the
        // result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                GUARD_RESERVE_BYTES as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let Some(slot) = claim(&MEM_BASE, usize::MAX) else {
            // SAFETY: unmaps the reservation made above.
            unsafe { libc::munmap(ptr, GUARD_RESERVE_BYTES as usize) };
            return Err(std::io::Error::other("too many guard-page memories"));
        };
        MEM_SIZE[slot].store(0, Ordering::Release);
        MEM_BASE[slot].store(ptr as usize, Ordering::Release);
        Ok(Self {
            base: ptr.cast(),
            size: 0,
            slot,
        })
    }
}

impl Default for GuardMemory {
    fn default() -> Self {
        Self::new().expect("reserving a guard-page memory")
    }
}

impl LinearMemory for GuardMemory {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.base
    }

    fn size_bytes(&self) -> usize {
        self.size
    }

    fn grow_to(&mut self, new_size_bytes: usize) -> bool {
        if new_size_bytes as u64 > 1 << 32 {
            return false;
        }
        if new_size_bytes <= self.size {
            return true;
        }
        // Pages were never accessible before, so they read as zero.
        // SAFETY: re-protects the first `new_size_bytes` (page multiples: wasm pages are
        // 64 KiB) of the reservation this memory owns.
        let ok = unsafe {
            libc::mprotect(
                self.base.cast(),
                new_size_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        } == 0;
        if ok {
            self.size = new_size_bytes;
            MEM_SIZE[self.slot].store(new_size_bytes, Ordering::Release);
        }
        ok
    }

    fn guard_reserved(&self) -> bool {
        true
    }
}

impl Drop for GuardMemory {
    fn drop(&mut self) {
        MEM_BASE[self.slot].store(0, Ordering::Release);
        // SAFETY: the reservation was made in `new` and is unmapped once; no instance uses it
        // any more (the memory is dropped with its last holder).
        unsafe { libc::munmap(self.base.cast(), GUARD_RESERVE_BYTES as usize) };
    }
}
