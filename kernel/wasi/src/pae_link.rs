//! WASI functions as host functions of atoll-pae's generated code (the `HostFunc` ABI: the VM
//! context, a data pointer, the argument/result slots). The data pointer of each import is a
//! [`Binding`] naming the function and the program's [`WasiCtx`]; linear memory is taken from
//! the VM context for the length of one call.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_void;

use atoll_pae::runtime::Extern;
use atoll_pae::{TrapCode, VmContext};

use crate::{Func, WasiCtx};

/// One bound import.
#[derive(Debug)]
struct Binding {
    ctx: *mut WasiCtx,
    func: Func,
}

/// A program's WASI context with the bindings its imports point at. Keep it alive, and do not
/// use the context, while generated code linked to it runs.
#[derive(Debug)]
pub struct WasiLink {
    /// Owned (made by `Box::into_raw`, freed in `drop`); a raw pointer, so the bindings'
    /// copies of it stay valid however the link is borrowed.
    ctx: core::ptr::NonNull<WasiCtx>,
    /// One per [`Func::ALL`] entry, allocated once so their addresses never change.
    bindings: Box<[Binding]>,
}

// SAFETY: the bindings only point into `ctx`, which the link owns and moves with it; the
// context itself is `Send` (its `System` is).
unsafe impl Send for WasiLink {}

impl WasiLink {
    /// Takes ownership of `ctx`.
    pub fn new(ctx: WasiCtx) -> Self {
        let ctx = core::ptr::NonNull::from(Box::leak(Box::new(ctx)));
        let ptr = ctx.as_ptr();
        let bindings = Func::ALL
            .iter()
            .map(|&func| Binding { ctx: ptr, func })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Self { ctx, bindings }
    }

    /// The host function for `wasi_snapshot_preview1.<name>`, if it is a WASI function.
    pub fn extern_for(&mut self, name: &str) -> Option<Extern> {
        let binding = self.bindings.iter_mut().find(|b| b.func.name() == name)?;
        let data: *mut Binding = binding;
        Some(Extern::Host {
            func: call,
            data: data.cast(),
        })
    }

    /// The context (once generated code is done with it).
    pub fn ctx(&mut self) -> &mut WasiCtx {
        // SAFETY: the link owns the context; `&mut self` and the type's contract (no generated
        // code linked to it runs meanwhile) make this the only use of it.
        unsafe { &mut *self.ctx.as_ptr() }
    }
}

impl Drop for WasiLink {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from `Box::leak` in `new` and is freed only here.
        drop(unsafe { Box::from_raw(self.ctx.as_ptr()) });
    }
}

/// The host function behind every WASI import.
unsafe extern "C" fn call(vm: *mut VmContext, data: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: `data` is the `Binding` `extern_for` made, owned by a `WasiLink` that outlives
    // the instance (its contract), and nothing else uses the context during the call.
    let binding = unsafe { &*data.cast::<Binding>() };
    // SAFETY: as above: the context is live and used only by this call.
    let ctx = unsafe { &mut *binding.ctx };
    let params = binding.func.params().len();
    let mut args = [0u64; 9];
    // SAFETY: generated code passes a slot array with room for max(params, results) values.
    unsafe { core::ptr::copy_nonoverlapping(slots, args.as_mut_ptr(), params.min(9)) };
    // SAFETY: the VM context is the calling instance's, describing its live linear memory
    // (`memory_size_bytes` bytes at `memory_base`), which nothing else touches during the call.
    let mem: &mut [u8] = unsafe {
        let (base, len) = ((*vm).memory_base, (*vm).memory_size_bytes as usize);
        if base.is_null() || len == 0 {
            &mut []
        } else {
            core::slice::from_raw_parts_mut(base, len)
        }
    };
    match ctx.call(binding.func, mem, &args[..params]) {
        Ok(errno) => {
            if binding.func.returns_errno() {
                // SAFETY: there is room for the one result.
                unsafe { *slots = u64::from(errno) };
            }
            0
        }
        Err(_) => TrapCode::HostError as u32,
    }
}
