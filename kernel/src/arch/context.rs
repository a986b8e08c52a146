//! Thread contexts as the trap path sees them: the first trap frame of a new thread, and lending
//! a saved frame to another core.
//!
//! A new thread starts by "returning" from a trap into [`thread_start`], which calls the
//! thread's entry and then its exit. A saved frame (a parked core's, a thread's that is off its
//! core) is lent through a [`LentFrame`]: a borrower gets it alone, and the lender cannot take
//! it back while it is borrowed.

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use super::gdt::{KERNEL_CODE, KERNEL_DATA};
use super::trap::TrapFrame;

/// RFLAGS of a new thread: interrupts on (bit 9) and the always-one bit 1.
const NEW_THREAD_RFLAGS: u64 = 0x202;
/// Bytes left free above a new thread's first frame (room for its fake return address).
const STACK_TOP_RESERVE: usize = 64;

/// Where every new thread starts: `entry(arg)`, then `exit()`. Reached only through frames made
/// by [`new_thread_frame`], which put `entry` in RDI, `arg` in RSI and `exit` in RDX.
extern "C" fn thread_start(entry: usize, arg: u64, exit: usize) -> ! {
    // SAFETY: `new_thread_frame` is the only code that names this function, and it stores a
    // `fn(u64)` in RDI and a `fn() -> !` in RDX of the frame that starts here.
    let (entry, exit) = unsafe {
        (
            core::mem::transmute::<usize, fn(u64)>(entry),
            core::mem::transmute::<usize, fn() -> !>(exit),
        )
    };
    entry(arg);
    exit()
}

/// Why a new thread's frame could not be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The stack is too small for a frame, or its top is not 16-byte aligned.
    BadStack,
}

/// Lays out a new thread's first context at the top of `stack` (fresh memory that will become
/// the thread's stack): a trap frame that resumes in kernel mode, interrupts on, at
/// `entry(arg)` followed by `exit()`, with RSP just below a zero return address. Returns the
/// frame, for the scheduler to resume.
pub fn new_thread_frame(
    stack: &mut [u8],
    entry: fn(u64),
    arg: u64,
    exit: fn() -> !,
) -> Result<*mut TrapFrame, FrameError> {
    let base = stack.as_mut_ptr() as usize;
    let top = base + stack.len();
    let frame_bytes = core::mem::size_of::<TrapFrame>();
    if !top.is_multiple_of(16) || stack.len() < STACK_TOP_RESERVE + frame_bytes + 16 {
        return Err(FrameError::BadStack);
    }
    let frame_at = (top - STACK_TOP_RESERVE - frame_bytes) & !0xf;
    let return_at = top - 8;
    let frame = TrapFrame {
        rip: thread_start as *const () as u64,
        cs: u64::from(KERNEL_CODE),
        ss: u64::from(KERNEL_DATA),
        rflags: NEW_THREAD_RFLAGS,
        rsp: return_at as u64,
        rdi: entry as *const () as u64,
        rsi: arg,
        rdx: exit as *const () as u64,
        ..TrapFrame::default()
    };
    // SAFETY: both writes land inside `stack` (checked above: the frame ends at least
    // `STACK_TOP_RESERVE` bytes below the top, the return word is the last 8 bytes), which the
    // caller lends mutably; the frame address is 16-byte aligned and the word 8-byte aligned.
    unsafe {
        (frame_at as *mut TrapFrame).write(frame);
        (return_at as *mut u64).write(0);
    }
    Ok(frame_at as *mut TrapFrame)
}

const EMPTY: u8 = 0;
const LENT: u8 = 1;
const BORROWED: u8 = 2;

/// A saved trap frame lent to other cores: empty, lent, or borrowed by one of them.
#[derive(Debug)]
pub struct LentFrame {
    frame: AtomicPtr<TrapFrame>,
    state: AtomicU8,
}

impl Default for LentFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl LentFrame {
    /// Nothing lent.
    pub const fn new() -> Self {
        Self {
            frame: AtomicPtr::new(core::ptr::null_mut()),
            state: AtomicU8::new(EMPTY),
        }
    }

    /// Lends `frame` while `wait` runs (a core parked in a handler): others may borrow it
    /// meanwhile. It is taken back, after any borrow in progress, before this returns.
    pub fn lend_while<R>(&self, frame: &mut TrapFrame, wait: impl FnOnce() -> R) -> R {
        // SAFETY: `frame` is mutably borrowed for this whole call, and taken back before the
        // call returns.
        unsafe { self.lend(frame) };
        let result = wait();
        self.take_back();
        result
    }

    /// Lends `frame` until [`take_back`](Self::take_back).
    ///
    /// # Safety
    /// `frame` must stay valid, and nothing but a borrower may touch it, until `take_back`
    /// returns it.
    pub unsafe fn lend(&self, frame: *mut TrapFrame) {
        self.frame.store(frame, Ordering::Relaxed);
        self.state.store(LENT, Ordering::Release);
    }

    /// Takes the lent frame back, waiting for a borrower to finish with it; returns it (null
    /// if none was lent). Borrowers see nothing after this.
    pub fn take_back(&self) -> *mut TrapFrame {
        loop {
            match self
                .state
                .compare_exchange(LENT, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return self.frame.swap(core::ptr::null_mut(), Ordering::Relaxed),
                Err(EMPTY) => return core::ptr::null_mut(),
                Err(_) => core::hint::spin_loop(),
            }
        }
    }

    /// Runs `f` on the lent frame, if one is lent and no one else borrows it now (a borrower
    /// never waits: it may run while the one it would wait for is parked). The lender cannot
    /// take the frame back until `f` returns.
    pub fn borrow<R>(&self, f: impl FnOnce(&mut TrapFrame) -> R) -> Option<R> {
        self.state
            .compare_exchange(LENT, BORROWED, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        let frame = self.frame.load(Ordering::Relaxed);
        // SAFETY: LENT -> BORROWED made this caller the only one with access: other borrowers
        // fail the same exchange, the lender's `take_back` waits until the state is LENT again,
        // and `lend`'s contract keeps the frame valid until then.
        let result = unsafe { frame.as_mut() }.map(f);
        self.state.store(LENT, Ordering::Release);
        result
    }
}
