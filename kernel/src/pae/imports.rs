//! The kernel functions chunks import from the `atoll` module (see docs/chunk-format.md):
//! `print(ptr, len)`, `cycles() -> i64`, `yield()`.
//!
//! Generated code calls these with raw pointers to its VM context and argument slots (the
//! `HostFunc` ABI), so the module may use `unsafe`: each function checks what it reads from
//! linear memory against the memory's size first.

use core::ffi::c_void;

use atoll_pae::vmctx::VmContext;
use atoll_pae::{HostFunc, TrapCode};

/// `print(ptr: i32, len: i32)`: prints the bytes as one console line; out-of-bounds traps.
unsafe extern "C" fn print(vm: *mut VmContext, _: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: generated code passes its live VM context and a slot array holding the two
    // arguments; the range is checked against the memory size before it is read.
    unsafe {
        let ptr = u64::from(*slots as u32);
        let len = u64::from(*slots.add(1) as u32);
        if ptr + len > (*vm).memory_size_bytes {
            return TrapCode::MemoryOutOfBounds as u32;
        }
        let bytes = core::slice::from_raw_parts((*vm).memory_base.add(ptr as usize), len as usize);
        crate::println!("{}", alloc::string::String::from_utf8_lossy(bytes));
    }
    0
}

/// `cycles() -> i64`: the TSC.
unsafe extern "C" fn cycles(_: *mut VmContext, _: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: one result slot.
    unsafe { *slots = crate::arch::cpu::rdtsc() };
    0
}

/// `yield()`: gives the core to other threads.
unsafe extern "C" fn yield_now(_: *mut VmContext, _: *mut c_void, _: *mut u64) -> u32 {
    crate::pae::yield_hook();
    0
}

/// The kernel function behind `atoll.<name>`, if there is one.
pub fn lookup(name: &str) -> Option<HostFunc> {
    Some(match name {
        "print" => print,
        "cycles" => cycles,
        "yield" => yield_now,
        _ => return None,
    })
}
