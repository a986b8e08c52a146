//! Wasmtime 48 with either of its compilers: Cranelift (optimizing) or Winch (baseline).
//! Default configuration otherwise (guard pages and signal-based traps on Linux); compiled
//! without the `parallel-compilation` feature, so modules compile on one thread like atoll's.

use std::collections::HashMap;

use chunk_image::{Image, Value};
use wasmtime::{Config, Instance, Linker, Module, Store, Strategy, Val};

use crate::engine::{Call, Engine, World, rdtsc};

/// A Wasmtime engine with one compilation strategy.
pub struct Wasmtime {
    name: &'static str,
    pub(crate) engine: wasmtime::Engine,
}

impl Wasmtime {
    /// `Strategy::Cranelift` or `Strategy::Winch`.
    pub fn new(name: &'static str, strategy: Strategy) -> Result<Self, String> {
        let mut config = Config::new();
        config.strategy(strategy);
        let engine = wasmtime::Engine::new(&config).map_err(|e| format!("{name}: {e}"))?;
        Ok(Self { name, engine })
    }
}

impl Engine for Wasmtime {
    fn name(&self) -> &'static str {
        self.name
    }

    fn compile(&self, wasm: &[u8]) -> Result<(), String> {
        let module = Module::new(&self.engine, wasm).map_err(|e| format!("{e:?}"))?;
        std::hint::black_box(&module);
        Ok(())
    }

    fn command(&self, wasm: &[u8]) -> Result<Box<dyn crate::engine::Command>, String> {
        self.wasi_command(wasm)
    }

    fn load(&self, image: &Image<'_>, chunks: &[&str]) -> Result<Box<dyn World>, String> {
        let err = |e: wasmtime::Error| format!("{e:?}");
        let mut store = Store::new(&self.engine, ());
        let mut linker: Linker<()> = Linker::new(&self.engine);
        linker
            .func_wrap("atoll", "print", |_: i32, _: i32| {})
            .map_err(err)?;
        linker
            .func_wrap("atoll", "cycles", || rdtsc() as i64)
            .map_err(err)?;
        linker.func_wrap("atoll", "yield", || {}).map_err(err)?;
        let mut instances = HashMap::new();
        for &name in chunks {
            let chunk = image.chunk(name).ok_or(format!("no chunk `{name}`"))?;
            let module = Module::new(&self.engine, chunk.module).map_err(err)?;
            let instance = linker.instantiate(&mut store, &module).map_err(err)?;
            linker.instance(&mut store, name, instance).map_err(err)?;
            instances.insert(name.to_string(), instance);
        }
        Ok(Box::new(WasmtimeWorld { store, instances }))
    }
}

struct WasmtimeWorld {
    store: Store<()>,
    instances: HashMap<String, Instance>,
}

fn to_val(v: Value) -> Val {
    match v {
        Value::I32(x) => Val::I32(x),
        Value::I64(x) => Val::I64(x),
        Value::F32(x) => Val::F32(x.to_bits()),
        Value::F64(x) => Val::F64(x.to_bits()),
    }
}

fn to_bits(v: &Val) -> u64 {
    match v {
        Val::I32(x) => u64::from(*x as u32),
        Val::I64(x) => *x as u64,
        Val::F32(x) => u64::from(*x),
        Val::F64(x) => *x,
        _ => u64::MAX,
    }
}

impl World for WasmtimeWorld {
    fn prepare<'a>(
        &'a mut self,
        chunk: &str,
        export: &str,
        args: &[Value],
    ) -> Result<Call<'a>, String> {
        let instance = *self
            .instances
            .get(chunk)
            .ok_or(format!("chunk `{chunk}` not loaded"))?;
        let func = instance
            .get_func(&mut self.store, export)
            .ok_or(format!("no export `{chunk}.{export}`"))?;
        let params: Vec<Val> = args.iter().copied().map(to_val).collect();
        let mut results: Vec<Val> = func
            .ty(&self.store)
            .results()
            .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
            .collect();
        let store = &mut self.store;
        Ok(Box::new(move || {
            func.call(&mut *store, &params, &mut results)
                .map_err(|e| format!("{e:?}"))?;
            Ok(results.iter().map(to_bits).collect())
        }))
    }
}
