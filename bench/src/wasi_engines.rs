//! The three engines running WASI command modules, each linked to the same preview1 subset
//! (`atoll-wasi`, as the kernel and `chunkc` use it): Wasmtime and wasmi through their
//! linkers' dynamically typed host functions, atoll's generated code through `pae_link`.
//! Every run instantiates the module afresh (new linear memory, new WASI context) from code
//! compiled once.

use std::rc::Rc;
use std::sync::Arc;

use atoll_pae::runtime::{CodeMemory, Instance, InvokeError, SigRegistry};
use atoll_pae::{CompiledModule, TrapCode};
use atoll_wasi::abi::Ty;
use atoll_wasi::pae_link::WasiLink;
use atoll_wasi::{Func, MODULE, WasiCtx};

use crate::atoll::{Atoll, map_code, new_memory};
use crate::engine::Command;
use crate::wasi_setup::{Ran, Setup, take};
use crate::wasmi_engine::Wasmi;
use crate::wasmtime_engine::Wasmtime;

fn raw_wasmtime(v: &wasmtime::Val) -> u64 {
    match v {
        wasmtime::Val::I32(x) => u64::from(*x as u32),
        wasmtime::Val::I64(x) => *x as u64,
        _ => 0,
    }
}

fn raw_wasmi(v: &wasmi::Val) -> u64 {
    match v {
        wasmi::Val::I32(x) => u64::from(*x as u32),
        wasmi::Val::I64(x) => *x as u64,
        _ => 0,
    }
}

/// How a run that stopped with an error ended: `proc_exit`'s code, or the error.
fn exit_or(ctx: &WasiCtx, e: String) -> Result<u32, String> {
    ctx.exit_code().ok_or(e)
}

struct WasmtimeCommand {
    engine: wasmtime::Engine,
    module: wasmtime::Module,
    linker: wasmtime::Linker<WasiCtx>,
}

impl Wasmtime {
    pub(crate) fn wasi_command(&self, wasm: &[u8]) -> Result<Box<dyn Command>, String> {
        let err = |e: wasmtime::Error| format!("{e:?}");
        let module = wasmtime::Module::new(&self.engine, wasm).map_err(err)?;
        let mut linker = wasmtime::Linker::new(&self.engine);
        for &func in Func::ALL {
            let ty = |t: &Ty| match t {
                Ty::I32 => wasmtime::ValType::I32,
                Ty::I64 => wasmtime::ValType::I64,
            };
            let results = func.returns_errno().then_some(wasmtime::ValType::I32);
            let fty = wasmtime::FuncType::new(&self.engine, func.params().iter().map(ty), results);
            linker
                .func_new(
                    MODULE,
                    func.name(),
                    fty,
                    move |mut caller: wasmtime::Caller<'_, WasiCtx>, params, results| {
                        let args: Vec<u64> = params.iter().map(raw_wasmtime).collect();
                        let memory = caller
                            .get_export("memory")
                            .and_then(wasmtime::Extern::into_memory);
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
                                    *r = wasmtime::Val::I32(errno as i32);
                                }
                                Ok(())
                            }
                            Err(exit) => Err(wasmtime::Error::msg(format!("exit {}", exit.0))),
                        }
                    },
                )
                .map_err(err)?;
        }
        Ok(Box::new(WasmtimeCommand {
            engine: self.engine.clone(),
            module,
            linker,
        }))
    }
}

impl Command for WasmtimeCommand {
    fn run(&mut self, setup: &Setup) -> Result<Ran, String> {
        let (ctx, stdout) = setup.context();
        let mut store = wasmtime::Store::new(&self.engine, ctx);
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .map_err(|e| format!("{e:?}"))?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|e| format!("{e:?}"))?;
        let exit = match start.call(&mut store, ()) {
            Ok(()) => 0,
            Err(e) => exit_or(store.data(), format!("{e:?}"))?,
        };
        Ok(Ran {
            exit,
            stdout: take(&stdout),
        })
    }
}

struct WasmiCommand {
    engine: wasmi::Engine,
    module: wasmi::Module,
    linker: wasmi::Linker<WasiCtx>,
}

impl Wasmi {
    pub(crate) fn wasi_command(&self, wasm: &[u8]) -> Result<Box<dyn Command>, String> {
        let module = wasmi::Module::new(&self.engine, wasm).map_err(|e| e.to_string())?;
        let mut linker = wasmi::Linker::new(&self.engine);
        for &func in Func::ALL {
            let ty = |t: &Ty| match t {
                Ty::I32 => wasmi::ValType::I32,
                Ty::I64 => wasmi::ValType::I64,
            };
            let params: Vec<wasmi::ValType> = func.params().iter().map(ty).collect();
            let results = func.returns_errno().then_some(wasmi::ValType::I32);
            linker
                .func_new(
                    MODULE,
                    func.name(),
                    wasmi::FuncType::new(params, results),
                    move |mut caller: wasmi::Caller<'_, WasiCtx>,
                          params: &[wasmi::Val],
                          results: &mut [wasmi::Val]| {
                        let args: Vec<u64> = params.iter().map(raw_wasmi).collect();
                        let memory = caller
                            .get_export("memory")
                            .and_then(wasmi::Extern::into_memory);
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
                                    *r = wasmi::Val::I32(errno as i32);
                                }
                                Ok(())
                            }
                            Err(exit) => Err(wasmi::Error::i32_exit(exit.0 as i32)),
                        }
                    },
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(Box::new(WasmiCommand {
            engine: self.engine.clone(),
            module,
            linker,
        }))
    }
}

impl Command for WasmiCommand {
    fn run(&mut self, setup: &Setup) -> Result<Ran, String> {
        let (ctx, stdout) = setup.context();
        let mut store = wasmi::Store::new(&self.engine, ctx);
        let instance = self
            .linker
            .instantiate_and_start(&mut store, &self.module)
            .map_err(|e| e.to_string())?;
        let start = instance
            .get_typed_func::<(), ()>(&store, "_start")
            .map_err(|e| e.to_string())?;
        let exit = match start.call(&mut store, ()) {
            Ok(()) => 0,
            Err(e) => match e.i32_exit_status() {
                Some(code) => code as u32,
                None => return Err(e.to_string()),
            },
        };
        Ok(Ran {
            exit,
            stdout: take(&stdout),
        })
    }
}

/// One module's read-execute code, shared by every instance of it (never written after
/// mapping, so sharing is sound).
struct SharedCode(Rc<dyn CodeMemory>);

// SAFETY: the mapping stays valid while any instance holds this `Rc`.
unsafe impl CodeMemory for SharedCode {
    fn base(&self) -> usize {
        self.0.base()
    }
}

struct AtollCommand {
    module: Arc<CompiledModule>,
    code: Rc<dyn CodeMemory>,
}

impl Atoll {
    pub(crate) fn wasi_command(&self, wasm: &[u8]) -> Result<Box<dyn Command>, String> {
        let module = atoll_pae::compile(wasm, &self.options).map_err(|e| e.to_string())?;
        let code: Rc<dyn CodeMemory> = map_code(&module.code, self.options.guard_pages)?.into();
        Ok(Box::new(AtollCommand {
            module: Arc::new(module),
            code,
        }))
    }
}

impl Command for AtollCommand {
    fn run(&mut self, setup: &Setup) -> Result<Ran, String> {
        let (ctx, stdout) = setup.context();
        // Declared before the instance, so dropped after it: its imports point into it.
        let mut link = WasiLink::new(ctx);
        let mut imports = Vec::new();
        for import in &self.module.desc.imports {
            let ext = (import.module == MODULE)
                .then(|| link.extern_for(&import.name))
                .flatten()
                .ok_or(format!(
                    "unknown import `{}.{}`",
                    import.module, import.name
                ))?;
            imports.push(ext);
        }
        let mut sigs = SigRegistry::default();
        let mut instance = Instance::new(
            self.module.clone(),
            Box::new(SharedCode(self.code.clone())),
            new_memory(self.module.options.guard_pages)?,
            &imports,
            &mut sigs,
        )
        .map_err(|e| e.to_string())?;
        let start = self
            .module
            .desc
            .export_func("_start")
            .ok_or("no `_start` export")?;
        let result = instance.invoke(start, &[]);
        drop(instance);
        let exit = match result {
            Ok(_) => 0,
            Err(InvokeError::Trap(TrapCode::HostError)) => {
                exit_or(link.ctx(), "host error".into())?
            }
            Err(e) => return Err(e.to_string()),
        };
        Ok(Ran {
            exit,
            stdout: take(&stdout),
        })
    }
}
