//! WASI programs on wasmi, the reference interpreter: every `wasi_snapshot_preview1` function
//! is defined in the linker and calls the shared `atoll-wasi` implementation with the calling
//! instance's exported `memory`.

use atoll_wasi::{Func, MODULE, WasiCtx};
use wasmi::{Caller, Engine, Extern, FuncType, Linker, Module, Store, Val, ValType};

use super::{Ended, RunOutput, Setup, context, finish};
use crate::chunkc::ChunkcError;

fn val_type(ty: atoll_wasi::abi::Ty) -> ValType {
    match ty {
        atoll_wasi::abi::Ty::I32 => ValType::I32,
        atoll_wasi::abi::Ty::I64 => ValType::I64,
    }
}

fn raw(v: &Val) -> u64 {
    match v {
        Val::I32(x) => u64::from(*x as u32),
        Val::I64(x) => *x as u64,
        _ => 0,
    }
}

/// A linker with every WASI function defined over a store holding the [`WasiCtx`].
pub fn wasi_linker(engine: &Engine) -> Result<Linker<WasiCtx>, ChunkcError> {
    let mut linker = Linker::new(engine);
    for &func in Func::ALL {
        let params: Vec<ValType> = func.params().iter().map(|&t| val_type(t)).collect();
        let results: &[ValType] = if func.returns_errno() {
            &[ValType::I32]
        } else {
            &[]
        };
        let ty = FuncType::new(params, results.iter().copied());
        linker
            .func_new(
                MODULE,
                func.name(),
                ty,
                move |mut caller: Caller<'_, WasiCtx>, params: &[Val], results: &mut [Val]| {
                    let args: Vec<u64> = params.iter().map(raw).collect();
                    let memory = caller.get_export("memory").and_then(Extern::into_memory);
                    let outcome = match memory {
                        Some(m) => {
                            let (mem, ctx) = m.data_and_store_mut(&mut caller);
                            ctx.call(func, mem, &args)
                        }
                        None => caller.data_mut().call(func, &mut [], &args),
                    };
                    match outcome {
                        Ok(errno) => {
                            if let Some(r) = results.first_mut() {
                                *r = Val::I32(errno as i32);
                            }
                            Ok(())
                        }
                        Err(exit) => Err(wasmi::Error::i32_exit(exit.0 as i32)),
                    }
                },
            )
            .map_err(|e| ChunkcError::Run(e.to_string()))?;
    }
    Ok(linker)
}

/// Runs the command module `wasm` (its `_start`), after instantiating each preload
/// `(name, module)` and linking its exports under `name`.
pub fn run(
    wasm: &[u8],
    preloads: &[(String, Vec<u8>)],
    setup: &Setup,
) -> Result<RunOutput, ChunkcError> {
    let engine = Engine::default();
    let (ctx, captured) = context(setup)?;
    let mut store = Store::new(&engine, ctx);
    let mut linker = wasi_linker(&engine)?;
    let ended = |e: wasmi::Error| match e.i32_exit_status() {
        Some(code) => Ok(Ended::Exit(code as u32)),
        None if e.as_trap_code().is_some() => Ok(Ended::Trap(e.to_string())),
        None => Err(e),
    };
    for (name, bytes) in preloads {
        let module = Module::new(&engine, bytes)
            .map_err(|e| ChunkcError::Run(format!("preload `{name}`: {e}")))?;
        let instance = match linker.instantiate_and_start(&mut store, &module) {
            Ok(i) => i,
            Err(e) => {
                let e = ended(e).map_err(|e| ChunkcError::Run(format!("preload `{name}`: {e}")))?;
                return Ok(finish(e, captured));
            }
        };
        let exports: Vec<(String, Extern)> = instance
            .exports(&store)
            .map(|e| (e.name().to_string(), e.into_extern()))
            .collect();
        for (field, ext) in exports {
            linker
                .define(name, &field, ext)
                .map_err(|e| ChunkcError::Run(format!("linking `{name}.{field}`: {e}")))?;
        }
    }
    let module = Module::new(&engine, wasm).map_err(|e| ChunkcError::Run(e.to_string()))?;
    let instance = match linker.instantiate_and_start(&mut store, &module) {
        Ok(i) => i,
        Err(e) => {
            let e = ended(e).map_err(|e| ChunkcError::Run(e.to_string()))?;
            return Ok(finish(e, captured));
        }
    };
    let start = instance
        .get_typed_func::<(), ()>(&store, "_start")
        .map_err(|_| ChunkcError::Run("the module exports no `_start: [] -> []`".into()))?;
    let outcome = match start.call(&mut store, ()) {
        Ok(()) => Ended::Exit(0),
        Err(e) => ended(e).map_err(|e| ChunkcError::Run(e.to_string()))?,
    };
    Ok(finish(outcome, captured))
}
