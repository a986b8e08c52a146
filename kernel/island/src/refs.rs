//! The reference finder: walks one stopped thread's frame-pointer chain and reports every
//! reference into the island being moved (its saved RIP, every return-address slot), each with
//! the address of the same instruction in the copy, or says exactly why it cannot tell now.
//!
//! # Why the chain finds every return address
//!
//! A return address into generated code is pushed by a `call` in generated code; the callee
//! then either is generated code (every generated function starts `push rbp; mov rbp, rsp`,
//! checked by [`crate::layout`]) or foreign code (a libcall or host function: kernel code, built
//! with frame pointers). Once the callee's `push rbp` ran, the return address is the `[rbp+8]`
//! of a frame record, and records chain through `[rbp]` up to the thread's first frame
//! (`rbp == 0`). So a return address is missed only when its callee has no record, which
//! happens in exactly two places:
//!
//! - the youngest frame is generated code in a *window* ([`Window`]): at `push rbp`, at
//!   `mov rbp, rsp`, or at `ret` after `leave`. The windows are known from decoding, and in each
//!   one the return address is at `[rsp]` or `[rsp+8]`, so they are handled exactly;
//! - foreign code called by generated code has not pushed its record yet (or popped it, or never
//!   makes one). Then the first record on the chain is the generated caller's own, whose return
//!   address was pushed by a call to *generated* code. Every record is checked against the call
//!   that pushed its return address (the call-site metadata says what it calls): a record owned
//!   by generated code whose frame runs foreign code means a record is missing, and the walk
//!   answers [`RetryReason::ForeignFrameWithoutRecord`] instead of guessing.
//!
//! The walk never allocates: the caller passes the output buffer.

use atoll_pae::CallTarget;

use crate::island::{IslandSet, Location, ModuleId, Relocation, Translation};
use crate::layout::Window;

/// Where a walk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkEnd {
    /// At the thread's first frame (`rbp == 0`).
    FirstFrame,
    /// At the entry trampoline's frame, when foreign code called it: for a caller that knows
    /// generated code is entered once per stack (host functions never call back into it), the
    /// older frames are foreign code only and hold no reference into an island.
    Entry,
}

/// The registers of a stopped thread the walk needs (from its parked or saved trap frame: the
/// thread's own frame, not an interrupt handler's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadContext {
    /// Where it resumes.
    pub rip: u64,
    /// Its stack pointer.
    pub rsp: u64,
    /// Its frame pointer.
    pub rbp: u64,
}

/// Read access to a stopped thread's stack. Must return `None` outside the thread's stack
/// (the walk reads nothing else), and never fault.
pub trait StackMemory {
    /// The 8 bytes at `addr`.
    fn read_u64(&self, addr: u64) -> Option<u64>;
}

/// What holds a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// The thread's saved RIP.
    Rip,
    /// A return address on its stack.
    ReturnAddress {
        /// Where it is stored.
        slot_addr: u64,
    },
}

/// One reference into the moving island.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// What holds it.
    pub kind: RefKind,
    /// Its value now (in the old copy).
    pub old_addr: u64,
    /// The value to write (the same instruction in the new copy).
    pub new_addr: u64,
}

impl Reference {
    /// A placeholder to fill output buffers with.
    pub const EMPTY: Reference = Reference {
        kind: RefKind::Rip,
        old_addr: 0,
        new_addr: 0,
    };
}

/// Why a thread's references cannot be determined now. Each is a state the thread leaves
/// within a few instructions (a window) or a broken precondition; the move is retried later
/// (bounded, counted) or abandoned, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The set changed since the move was prepared.
    StalePlan,
    /// An address in an island that is not an instruction start.
    NotAtInstructionBoundary {
        /// The address.
        addr: u64,
    },
    /// A RIP inside a `br_table` dispatch window (`FuncLayout::dispatch`): a register holds
    /// an address of the code being moved.
    InDispatchWindow {
        /// The RIP.
        addr: u64,
    },
    /// A stack read outside the thread's stack.
    Unreadable {
        /// The address.
        addr: u64,
    },
    /// `rbp` below `rsp`: the frame it names is dead (the trap exit between restoring `rsp`
    /// and `rbp`, or foreign code using `rbp` as a plain register).
    FramePointerBelowStack {
        /// `rbp`.
        rbp: u64,
        /// `rsp`.
        rsp: u64,
    },
    /// Foreign code called from generated code has no frame record yet (or any more): the
    /// return address into generated code is not on the chain.
    ForeignFrameWithoutRecord {
        /// The slot of the first return address the chain did find.
        slot_addr: u64,
    },
    /// A return address that does not fit the code of the frame it belongs to.
    InconsistentFrame {
        /// The slot holding it.
        slot_addr: u64,
    },
    /// A return address into generated code that does not follow a call.
    ReturnAddressNotAfterCall {
        /// The slot holding it.
        slot_addr: u64,
    },
    /// The chain does not go up the stack.
    ChainNotAscending {
        /// The offending frame pointer.
        fp: u64,
    },
    /// The chain ended (`rbp == 0`) in a frame called by generated code.
    ChainEndsInGeneratedCode,
    /// More frames than the walk's bound.
    TooDeep,
    /// More references than the output buffer holds.
    BufferFull,
}

/// The outcome of a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The chain was followed to its end; `found` references were written to the buffer.
    Complete {
        /// References written.
        found: usize,
        /// Frames walked.
        frames: usize,
    },
    /// Try again after the thread moved on.
    Retry(RetryReason),
}

/// What code a frame runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Here {
    Generated(ModuleId, u32),
    Anchor,
    Foreign,
}

/// Who pushed a frame record, by the call that pushed its return address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// A direct call: that function.
    Func(ModuleId, u32),
    /// An indirect call, the trampoline's call or a call to another instance: generated code.
    Generated,
    /// A libcall or host function.
    Foreign,
    /// Called from foreign code: foreign code or the entry trampoline.
    ForeignOrAnchor,
}

struct Walker<'a, M: ?Sized> {
    set: &'a IslandSet,
    prep: &'a dyn Relocation,
    mem: &'a M,
    out: &'a mut [Reference],
    found: usize,
    end: WalkEnd,
    /// The last return addresses classified, most recent first: deep recursion repeats the
    /// same one or two return addresses frame after frame, and their owner, code and
    /// translation depend on the address alone (the set does not change during a walk).
    memo: [Option<Classified>; 2],
}

/// What a return address is: the owner of the record holding it, the code it returns into,
/// and where it goes in the moved copy.
#[derive(Debug, Clone, Copy)]
struct Classified {
    r: u64,
    owner: Owner,
    next: Here,
    translation: Translation,
}

/// Finds every reference of the thread `ctx` into the island `prep` moves, writing them to
/// `out`. Follows at most `max_frames` frames. Reads the stack only through `mem`; allocates
/// nothing; changes nothing (the caller writes `new_addr` into each reference's holder).
pub fn find_references<M: StackMemory + ?Sized>(
    set: &IslandSet,
    prep: &dyn Relocation,
    ctx: ThreadContext,
    mem: &M,
    max_frames: usize,
    out: &mut [Reference],
) -> Walk {
    find_references_to(set, prep, ctx, mem, max_frames, out, WalkEnd::FirstFrame)
}

/// [`find_references`], ending where `end` says.
pub fn find_references_to<M: StackMemory + ?Sized>(
    set: &IslandSet,
    prep: &dyn Relocation,
    ctx: ThreadContext,
    mem: &M,
    max_frames: usize,
    out: &mut [Reference],
    end: WalkEnd,
) -> Walk {
    let mut w = Walker {
        set,
        prep,
        mem,
        out,
        found: 0,
        end,
        memo: [None; 2],
    };
    match w.run(ctx, max_frames) {
        Ok(frames) => Walk::Complete {
            found: w.found,
            frames,
        },
        Err(why) => Walk::Retry(why),
    }
}

impl<M: StackMemory + ?Sized> Walker<'_, M> {
    fn read(&self, addr: u64) -> Result<u64, RetryReason> {
        self.mem
            .read_u64(addr)
            .ok_or(RetryReason::Unreadable { addr })
    }

    fn report(&mut self, kind: RefKind, old_addr: u64) -> Result<(), RetryReason> {
        self.report_as(kind, old_addr, self.prep.translate(old_addr))
    }

    fn report_as(
        &mut self,
        kind: RefKind,
        old_addr: u64,
        translation: Translation,
    ) -> Result<(), RetryReason> {
        let new_addr = match translation {
            Translation::Outside => return Ok(()),
            Translation::OffBoundary => {
                return Err(RetryReason::NotAtInstructionBoundary { addr: old_addr });
            }
            Translation::Moved(n) => n,
        };
        let slot = self
            .out
            .get_mut(self.found)
            .ok_or(RetryReason::BufferFull)?;
        *slot = Reference {
            kind,
            old_addr,
            new_addr,
        };
        self.found += 1;
        Ok(())
    }

    /// Where the youngest frame's return address is and the caller's frame pointer.
    fn youngest(&mut self, ctx: ThreadContext) -> Result<(Here, Option<(u64, u64)>), RetryReason> {
        let dead = RetryReason::FramePointerBelowStack {
            rbp: ctx.rbp,
            rsp: ctx.rsp,
        };
        let (here, window) = match self.set.locate(ctx.rip) {
            Location::Island {
                island,
                func,
                offset,
            } => {
                if !island.layout.is_insn_start(offset) {
                    return Err(RetryReason::NotAtInstructionBoundary { addr: ctx.rip });
                }
                if func.in_dispatch_window(offset) {
                    return Err(RetryReason::InDispatchWindow { addr: ctx.rip });
                }
                (
                    Here::Generated(island.module, func.index),
                    func.window(offset),
                )
            }
            Location::Anchor(_) => (Here::Anchor, Window::Body),
            Location::Foreign if ctx.rbp == 0 => return Ok((Here::Foreign, None)),
            Location::Foreign => (Here::Foreign, Window::Body),
        };
        self.report(RefKind::Rip, ctx.rip)?;
        let frame = match window {
            Window::Entry | Window::AtRet => (ctx.rsp, ctx.rbp),
            Window::AfterPush => {
                if self.read(ctx.rsp)? != ctx.rbp {
                    return Err(RetryReason::InconsistentFrame { slot_addr: ctx.rsp });
                }
                (ctx.rsp + 8, ctx.rbp)
            }
            Window::Body => {
                if ctx.rbp < ctx.rsp {
                    return Err(dead);
                }
                (ctx.rbp + 8, self.read(ctx.rbp)?)
            }
        };
        Ok((here, Some(frame)))
    }

    /// Who owns the record whose return address is `r`, and what code `r` is in.
    fn owner_of(&self, r: u64, slot_addr: u64) -> Result<(Owner, Here), RetryReason> {
        Ok(match self.set.locate(r) {
            Location::Island {
                island,
                func,
                offset,
            } => {
                let call = func
                    .call_returning_to(offset)
                    .ok_or(RetryReason::ReturnAddressNotAfterCall { slot_addr })?;
                let owner = match call.target {
                    CallTarget::Func(j) => Owner::Func(island.module, j),
                    CallTarget::Indirect(_) | CallTarget::ImportWasm(_) | CallTarget::Cell(_) => {
                        Owner::Generated
                    }
                    CallTarget::Libcall(_) | CallTarget::Import(_) => Owner::Foreign,
                };
                (owner, Here::Generated(island.module, func.index))
            }
            Location::Anchor(_) => (Owner::Generated, Here::Anchor),
            Location::Foreign => (Owner::ForeignOrAnchor, Here::Foreign),
        })
    }

    /// [`Walker::owner_of`] and the translation of `r`, remembered for the next frames.
    fn classify(&mut self, r: u64, slot_addr: u64) -> Result<Classified, RetryReason> {
        if let Some(c) = self.memo.iter().flatten().find(|c| c.r == r) {
            return Ok(*c);
        }
        let (owner, next) = self.owner_of(r, slot_addr)?;
        let c = Classified {
            r,
            owner,
            next,
            translation: self.prep.translate(r),
        };
        self.memo = [Some(c), self.memo[0]];
        Ok(c)
    }

    fn run(&mut self, ctx: ThreadContext, max_frames: usize) -> Result<usize, RetryReason> {
        if self.prep.generation() != self.set.generation() {
            return Err(RetryReason::StalePlan);
        }
        let (mut here, frame) = self.youngest(ctx)?;
        let Some((mut slot, mut caller_fp)) = frame else {
            return Ok(0);
        };
        let mut youngest = true;
        let mut frames = 0;
        loop {
            frames += 1;
            if frames > max_frames {
                return Err(RetryReason::TooDeep);
            }
            let r = self.read(slot)?;
            let Classified {
                owner,
                next,
                translation,
                ..
            } = self.classify(r, slot)?;
            let fits = match (owner, here) {
                // A trap stub is jumped to from a function body: its frame is that function's.
                (Owner::Func(..) | Owner::Generated, Here::Anchor) => youngest,
                (Owner::Func(m, j), Here::Generated(hm, hj)) => (m, j) == (hm, hj),
                (Owner::Generated, Here::Generated(..)) => true,
                (Owner::Func(..) | Owner::Generated, Here::Foreign) => {
                    return Err(RetryReason::ForeignFrameWithoutRecord { slot_addr: slot });
                }
                (Owner::Foreign, here) => here == Here::Foreign,
                (Owner::ForeignOrAnchor, here) => !matches!(here, Here::Generated(..)),
            };
            if !fits {
                return Err(RetryReason::InconsistentFrame { slot_addr: slot });
            }
            self.report_as(RefKind::ReturnAddress { slot_addr: slot }, r, translation)?;
            if self.end == WalkEnd::Entry && here == Here::Anchor && next == Here::Foreign {
                // The trampoline's own frame, called by foreign code: generated code was
                // entered here, and nothing older can refer to an island.
                return Ok(frames);
            }
            if caller_fp == 0 {
                return if next == Here::Foreign {
                    Ok(frames)
                } else {
                    Err(RetryReason::ChainEndsInGeneratedCode)
                };
            }
            if caller_fp <= slot || caller_fp % 8 != 0 {
                return Err(RetryReason::ChainNotAscending { fp: caller_fp });
            }
            here = next;
            youngest = false;
            slot = caller_fp + 8;
            caller_fp = self.read(caller_fp)?;
        }
    }
}

#[cfg(test)]
mod tests;
