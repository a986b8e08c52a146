//! Register pools for the value stack (Liftoff-style: values stay in registers inside a basic
//! block, spill to their home stack slot when registers run out and at every control merge).
//!
//! Fixed registers: `rax`, `rcx`, `rdx` and `xmm0`, `xmm1`, `xmm15` are scratch; `rsp`, `rbp`
//! form the frame; `r14` holds the VM context and `r15` the linear-memory base. Everything else
//! is allocatable, except what locals pinned for a whole function take (`lower::pinned`).

/// Allocatable general registers (hardware numbers), in allocation order.
pub const GPRS: [u8; 9] = [3, 6, 7, 8, 9, 10, 11, 12, 13];
/// Allocatable XMM registers.
pub const XMMS: [u8; 13] = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

/// A set of free registers.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    free: u16,
}

impl Pool {
    /// All of `regs` free.
    pub fn new(regs: &[u8]) -> Self {
        Self {
            free: regs.iter().fold(0, |m, &r| m | (1 << r)),
        }
    }

    /// The same pool without the registers in `mask` (bit `r` for register `r`).
    pub fn without(self, mask: u16) -> Self {
        Self {
            free: self.free & !mask,
        }
    }

    /// Takes the lowest-numbered free register in allocation order.
    pub fn take(&mut self, order: &[u8]) -> Option<u8> {
        let r = *order.iter().find(|&&r| self.free & (1 << r) != 0)?;
        self.free &= !(1 << r);
        Some(r)
    }

    /// Returns `r` to the pool.
    pub fn give(&mut self, r: u8) {
        debug_assert!(self.free & (1 << r) == 0, "register {r} freed twice");
        self.free |= 1 << r;
    }
}
