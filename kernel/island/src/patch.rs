//! What else must change when an island moves: the `call rel32` sites in *other* islands that
//! call into it (from their call-site metadata), and code pointers held by value (exports,
//! `funcref` table entries, import bindings of other instances).
//!
//! Calls from the moving island itself need no patch: the copy was re-encoded at its new
//! address, so its calls to other islands already reach them.

use alloc::vec::Vec;

use atoll_pae::CallTarget;

use crate::copy::BoundaryMap;
use crate::island::{IslandId, IslandSet, PreparedMove, Translation};

/// Length of `call rel32` (`E8 disp32`).
pub const CALL_REL32_LEN: u32 = 5;

/// Why a patch cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchError {
    /// The new target is more than ±2 GiB from the call.
    OutOfRange {
        /// Address of the call instruction.
        call_addr: u64,
        /// The target it should reach.
        target: u64,
    },
    /// A direct call that is not the 5-byte `call rel32` form.
    NotRel32Call {
        /// Address of the call instruction.
        call_addr: u64,
    },
    /// A call target or code pointer into the island that is not an instruction start.
    OffBoundary {
        /// The address.
        addr: u64,
    },
}

/// One `call rel32` to re-target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPatch {
    /// The island holding the call.
    pub caller: IslandId,
    /// Address of the call instruction.
    pub call_addr: u64,
    /// Address of its 4-byte displacement (`call_addr + 1`).
    pub disp_addr: u64,
    /// The displacement there now (the kernel checks it before writing).
    pub old_rel32: i32,
    /// The displacement to write.
    pub new_rel32: i32,
}

/// The `rel32` of a call at `call_addr` (5 bytes long) that reaches `target`.
pub fn rel32(call_addr: u64, target: u64) -> Result<i32, PatchError> {
    let next = call_addr.wrapping_add(u64::from(CALL_REL32_LEN));
    i32::try_from(target.wrapping_sub(next) as i64)
        .map_err(|_| PatchError::OutOfRange { call_addr, target })
}

/// Every direct call in an island other than `moved` (same module: direct calls never leave a
/// module) whose callee lies in `moved`, with the displacement that reaches the callee in the
/// copy at `new_base` (offsets through `map`).
pub fn plan_call_patches(
    set: &IslandSet,
    moved: IslandId,
    new_base: u64,
    map: &BoundaryMap,
) -> Result<Vec<CallPatch>, PatchError> {
    let Some(target_island) = set.island(moved) else {
        return Ok(Vec::new());
    };
    let module = &set.modules[target_island.module.0 as usize];
    let mut out = Vec::new();
    for caller in set.live_islands() {
        if caller.id == moved || caller.module != target_island.module {
            continue;
        }
        for f in &caller.layout.funcs {
            for c in &f.calls {
                let CallTarget::Func(j) = c.target else {
                    continue;
                };
                if module.func_island.get(j as usize) != Some(&moved) {
                    continue;
                }
                let call_addr = caller.base() + u64::from(c.offset);
                if c.return_offset - c.offset != CALL_REL32_LEN {
                    return Err(PatchError::NotRel32Call { call_addr });
                }
                let callee = target_island
                    .layout
                    .funcs
                    .iter()
                    .find(|g| g.index == j)
                    .ok_or(PatchError::OffBoundary { addr: call_addr })?;
                let old_target = target_island.base() + u64::from(callee.range.start);
                let new_off = map
                    .new_offset(callee.range.start)
                    .ok_or(PatchError::OffBoundary { addr: old_target })?;
                out.push(CallPatch {
                    caller: caller.id,
                    call_addr,
                    disp_addr: call_addr + 1,
                    old_rel32: rel32(call_addr, old_target)?,
                    new_rel32: rel32(call_addr, new_base + u64::from(new_off))?,
                });
            }
        }
    }
    Ok(out)
}

/// Re-targets every code pointer in `entries` that points into the moving island (by value):
/// checks all first and changes nothing if one is off an instruction boundary, then rewrites.
/// Returns how many changed. Never allocates: usable inside the pause on a table's code
/// column.
pub fn retarget_code_pointers(
    entries: &mut [u64],
    prep: &PreparedMove,
) -> Result<usize, PatchError> {
    for &e in entries.iter() {
        if prep.translate(e) == Translation::OffBoundary {
            return Err(PatchError::OffBoundary { addr: e });
        }
    }
    let mut changed = 0;
    for e in entries.iter_mut() {
        if let Translation::Moved(n) = prep.translate(*e) {
            *e = n;
            changed += 1;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel32_is_relative_to_the_next_instruction_and_checks_reach() {
        assert_eq!(rel32(0x1000, 0x1005), Ok(0));
        assert_eq!(rel32(0x1000, 0x1000), Ok(-5));
        assert_eq!(rel32(0x1000, 0x1005 + 0x7fff_ffff), Ok(i32::MAX));
        assert_eq!(rel32(0x8000_1000, 0x8000_1005 - 0x8000_0000), Ok(i32::MIN));
        assert!(matches!(
            rel32(0x1000, 0x1005 + 0x8000_0000),
            Err(PatchError::OutOfRange { .. })
        ));
        assert!(matches!(
            rel32(0x8000_1000, 0x8000_1005 - 0x8000_0001),
            Err(PatchError::OutOfRange { .. })
        ));
    }
}
