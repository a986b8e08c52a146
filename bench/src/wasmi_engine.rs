//! wasmi 2, the interpreter atoll's tools use as the reference; eager translation so compile
//! figures include the whole translation to wasmi's bytecode.

use std::collections::HashMap;

use chunk_image::{Image, Value};
use wasmi::{CompilationMode, Config, Instance, Linker, Module, Store, Val};

use crate::engine::{Call, Engine, World, rdtsc};

/// wasmi with `CompilationMode::Eager`.
pub struct Wasmi {
    pub(crate) engine: wasmi::Engine,
}

impl Wasmi {
    /// A wasmi engine.
    pub fn new() -> Self {
        let mut config = Config::default();
        config.compilation_mode(CompilationMode::Eager);
        Self {
            engine: wasmi::Engine::new(&config),
        }
    }
}

impl Engine for Wasmi {
    fn name(&self) -> &'static str {
        "wasmi"
    }

    fn compile(&self, wasm: &[u8]) -> Result<(), String> {
        let module = Module::new(&self.engine, wasm).map_err(|e| e.to_string())?;
        std::hint::black_box(&module);
        Ok(())
    }

    fn command(&self, wasm: &[u8]) -> Result<Box<dyn crate::engine::Command>, String> {
        self.wasi_command(wasm)
    }

    fn load(&self, image: &Image<'_>, chunks: &[&str]) -> Result<Box<dyn World>, String> {
        let err = |e: wasmi::Error| e.to_string();
        let lerr = |e: wasmi::errors::LinkerError| e.to_string();
        let mut store = Store::new(&self.engine, ());
        let mut linker: Linker<()> = Linker::new(&self.engine);
        linker
            .func_wrap("atoll", "print", |_: i32, _: i32| {})
            .map_err(lerr)?;
        linker
            .func_wrap("atoll", "cycles", || rdtsc() as i64)
            .map_err(lerr)?;
        linker.func_wrap("atoll", "yield", || {}).map_err(lerr)?;
        let mut instances = HashMap::new();
        for &name in chunks {
            let chunk = image.chunk(name).ok_or(format!("no chunk `{name}`"))?;
            let module = Module::new(&self.engine, chunk.module).map_err(err)?;
            let instance = linker
                .instantiate_and_start(&mut store, &module)
                .map_err(err)?;
            let funcs: Vec<(String, wasmi::Extern)> = instance
                .exports(&store)
                .filter(|e| e.clone().into_extern().into_func().is_some())
                .map(|e| (e.name().to_string(), e.into_extern()))
                .collect();
            for (export, ext) in funcs {
                linker.define(name, &export, ext).map_err(lerr)?;
            }
            instances.insert(name.to_string(), instance);
        }
        Ok(Box::new(WasmiWorld { store, instances }))
    }
}

struct WasmiWorld {
    store: Store<()>,
    instances: HashMap<String, Instance>,
}

fn to_val(v: Value) -> Val {
    match v {
        Value::I32(x) => Val::I32(x),
        Value::I64(x) => Val::I64(x),
        Value::F32(x) => Val::F32(x.into()),
        Value::F64(x) => Val::F64(x.into()),
    }
}

fn to_bits(v: &Val) -> u64 {
    match v {
        Val::I32(x) => u64::from(*x as u32),
        Val::I64(x) => *x as u64,
        Val::F32(x) => u64::from(x.to_bits()),
        Val::F64(x) => x.to_bits(),
        _ => u64::MAX,
    }
}

impl World for WasmiWorld {
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
            .get_func(&self.store, export)
            .ok_or(format!("no export `{chunk}.{export}`"))?;
        let params: Vec<Val> = args.iter().copied().map(to_val).collect();
        let mut results: Vec<Val> = func
            .ty(&self.store)
            .results()
            .iter()
            .map(|t| Val::default_for_ty(*t))
            .collect();
        let store = &mut self.store;
        Ok(Box::new(move || {
            func.call(&mut *store, &params, &mut results)
                .map_err(|e| e.to_string())?;
            Ok(results.iter().map(to_bits).collect())
        }))
    }
}
