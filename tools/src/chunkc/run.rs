//! `chunkc run IMAGE CHUNK.EXPORT ARGS...`: the reference interpreter (wasmi).
//!
//! The requested chunk and every chunk it imports from (transitively) are instantiated in one
//! store, providers first; each provider's exports (functions, and the memories, tables and
//! globals chunks share) are linked under its chunk name. A [`Session`] runs several tasks with
//! the kernel's instance rules (linked groups keep their instances from task to task).
//! The kernel's `atoll` functions get host versions: `print` collects a line from the caller's
//! exported `memory`, `cycles` reads a monotonic nanosecond clock, `yield` does nothing.

use std::time::Instant;

use chunk_image::{Image, KERNEL_MODULE, validate_module};
use wasmi::{Caller, Engine, Extern, Instance, Linker, Module, Store, Val};

use super::error::ChunkcError;

pub use chunk_image::Value;

fn to_val(v: Value) -> Val {
    match v {
        Value::I32(v) => Val::I32(v),
        Value::I64(v) => Val::I64(v),
        Value::F32(v) => Val::F32(v.into()),
        Value::F64(v) => Val::F64(v.into()),
    }
}

fn from_val(val: &Val) -> Option<Value> {
    match val {
        Val::I32(v) => Some(Value::I32(*v)),
        Val::I64(v) => Some(Value::I64(*v)),
        Val::F32(v) => Some(Value::F32(f32::from(*v))),
        Val::F64(v) => Some(Value::F64(f64::from(*v))),
        _ => None,
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Returned normally.
    Returned(Vec<Value>),
    /// Trapped, with the interpreter's message.
    Trapped(String),
}

/// A call's outcome and the lines it printed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    /// Lines printed through `atoll.print`.
    pub printed: Vec<String>,
    /// Results or trap.
    pub outcome: Outcome,
}

#[derive(Debug)]
struct Host {
    printed: Vec<String>,
    start: Instant,
}

/// Runs `chunk.export` with textual arguments.
pub fn run_text(image: &[u8], target: &str, args: &[String]) -> Result<RunResult, ChunkcError> {
    let parsed = Image::parse(image)?;
    let mut session = Session::new(&parsed)?;
    call_text(&mut session, target, args)
}

/// Runs tasks `CHUNK.EXPORT ARGS...` separated by `;` words in one [`Session`] (linked groups
/// keep their state from one to the next), in order; stops after a task that traps.
pub fn run_tasks(image: &[u8], words: &[String]) -> Result<Vec<RunResult>, ChunkcError> {
    let parsed = Image::parse(image)?;
    let mut session = Session::new(&parsed)?;
    let mut results = Vec::new();
    for task in words.split(|w| w == ";").filter(|t| !t.is_empty()) {
        let result = call_text(&mut session, &task[0], &task[1..])?;
        let trapped = matches!(result.outcome, Outcome::Trapped(_));
        results.push(result);
        if trapped {
            break;
        }
    }
    Ok(results)
}

fn call_text(
    session: &mut Session<'_, '_>,
    target: &str,
    args: &[String],
) -> Result<RunResult, ChunkcError> {
    let parsed = session.image;
    let (chunk_name, export) = target
        .split_once('.')
        .ok_or_else(|| ChunkcError::Usage(format!("`{target}` is not CHUNK.EXPORT")))?;
    let chunk = parsed
        .chunk(chunk_name)
        .ok_or_else(|| ChunkcError::Run(format!("no chunk `{chunk_name}` in the image")))?;
    let sig = &chunk
        .manifest
        .exports
        .iter()
        .find(|e| e.name == export)
        .ok_or_else(|| ChunkcError::Run(format!("chunk `{chunk_name}` has no export `{export}`")))?
        .sig;
    if args.len() != sig.params.len() {
        return Err(ChunkcError::Run(format!(
            "`{target}` takes {} argument(s) {}, got {}",
            sig.params.len(),
            super::inspect::sig_text(sig),
            args.len()
        )));
    }
    let values = args
        .iter()
        .zip(&sig.params)
        .map(|(text, &ty)| {
            Value::parse(text, ty)
                .ok_or_else(|| ChunkcError::Run(format!("`{text}` is not a valid {}", ty.name())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    session.call(chunk_name, export, &values)
}

/// Runs `chunk.export` with typed arguments on a parsed image.
pub fn run_values(
    image: &Image<'_>,
    chunk_name: &str,
    export: &str,
    args: &[Value],
) -> Result<RunResult, ChunkcError> {
    Session::new(image)?.call(chunk_name, export, args)
}

/// Several tasks run one after another as the kernel runs them: chunks of a linked group
/// (chunks sharing a memory, table or global, see `chunk_image::linked_groups`) are
/// instantiated once and keep their state from task to task; every other chunk gets fresh
/// instances per task.
#[derive(Debug)]
pub struct Session<'i, 'b> {
    image: &'i Image<'b>,
    engine: Engine,
    store: Store<Host>,
    /// The group of each chunk, in image order.
    groups: Vec<Option<usize>>,
    /// Instances of group chunks made so far, in instantiation order.
    resident: Vec<(String, Instance)>,
}

impl<'i, 'b> Session<'i, 'b> {
    /// A session with nothing instantiated yet.
    pub fn new(image: &'i Image<'b>) -> Result<Self, ChunkcError> {
        let engine = Engine::default();
        let store = Store::new(
            &engine,
            Host {
                printed: Vec::new(),
                start: Instant::now(),
            },
        );
        let groups =
            chunk_image::linked_groups(image.chunks().iter().map(|c| (c.name, &c.manifest)));
        Ok(Self {
            image,
            engine,
            store,
            groups,
            resident: Vec::new(),
        })
    }

    fn in_group(&self, name: &str) -> bool {
        self.image
            .chunks()
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| self.groups.get(i).copied().flatten())
            .is_some()
    }

    /// Runs `chunk.export` with `args`; a trap (also while instantiating) is an outcome.
    pub fn call(
        &mut self,
        chunk_name: &str,
        export: &str,
        args: &[Value],
    ) -> Result<RunResult, ChunkcError> {
        let mut linker = kernel_linker(&self.engine)?;
        for (name, instance) in &self.resident {
            define_exports(&mut linker, &self.store, name, instance)?;
        }
        let order = instantiation_order(self.image, chunk_name)?;
        let mut target = None;
        for name in order {
            if let Some((_, instance)) = self.resident.iter().find(|(n, _)| n == name) {
                target = Some(*instance);
                continue;
            }
            let chunk = self
                .image
                .chunk(name)
                .ok_or_else(|| ChunkcError::Run(format!("no chunk `{name}` in the image")))?;
            validate_module(chunk.module)
                .map_err(|error| ChunkcError::Run(format!("chunk `{name}`: {error}")))?;
            let module = Module::new(&self.engine, chunk.module)
                .map_err(|e| ChunkcError::Run(format!("chunk `{name}`: {e}")))?;
            let instance = match linker.instantiate_and_start(&mut self.store, &module) {
                Ok(instance) => instance,
                Err(e) if e.as_trap_code().is_some() => {
                    return Ok(RunResult {
                        printed: std::mem::take(&mut self.store.data_mut().printed),
                        outcome: Outcome::Trapped(e.to_string()),
                    });
                }
                Err(e) => return Err(ChunkcError::Run(format!("chunk `{name}`: {e}"))),
            };
            define_exports(&mut linker, &self.store, name, &instance)?;
            if self.in_group(name) {
                self.resident.push((name.to_string(), instance));
            }
            target = Some(instance);
        }
        let instance = target.ok_or_else(|| ChunkcError::Run("nothing to run".into()))?;
        let func = instance.get_func(&self.store, export).ok_or_else(|| {
            ChunkcError::Run(format!("chunk `{chunk_name}` has no export `{export}`"))
        })?;
        let params: Vec<Val> = args.iter().map(|v| to_val(*v)).collect();
        let mut results: Vec<Val> = func
            .ty(&self.store)
            .results()
            .iter()
            .map(|ty| Val::default_for_ty(*ty))
            .collect();
        let outcome = match func.call(&mut self.store, &params, &mut results) {
            Ok(()) => Outcome::Returned(results.iter().filter_map(from_val).collect()),
            Err(e) => Outcome::Trapped(e.to_string()),
        };
        Ok(RunResult {
            printed: std::mem::take(&mut self.store.data_mut().printed),
            outcome,
        })
    }
}

/// Providers before the chunks that import from them (depth-first post-order). The image has no
/// cycles (the reader checked), so this terminates.
fn instantiation_order<'i>(image: &'i Image<'_>, root: &str) -> Result<Vec<&'i str>, ChunkcError> {
    let mut order: Vec<&str> = Vec::new();
    let mut stack: Vec<(&str, bool)> = vec![(
        image
            .chunk(root)
            .ok_or_else(|| ChunkcError::Run(format!("no chunk `{root}` in the image")))?
            .name,
        false,
    )];
    while let Some((name, expanded)) = stack.pop() {
        if order.contains(&name) {
            continue;
        }
        if expanded {
            order.push(name);
            continue;
        }
        stack.push((name, true));
        if let Some(chunk) = image.chunk(name) {
            for dep in chunk.manifest.chunk_dependencies() {
                if let Some(provider) = image.chunk(dep) {
                    stack.push((provider.name, false));
                }
            }
        }
    }
    Ok(order)
}

fn define_exports(
    linker: &mut Linker<Host>,
    store: &Store<Host>,
    chunk: &str,
    instance: &Instance,
) -> Result<(), ChunkcError> {
    // Functions, and the memories, tables and globals other chunks may share.
    let funcs: Vec<(String, Extern)> = instance
        .exports(store)
        .map(|e| (e.name().to_string(), e.into_extern()))
        .collect();
    for (name, func) in funcs {
        linker
            .define(chunk, &name, func)
            .map_err(|e| ChunkcError::Run(format!("linking `{chunk}.{name}`: {e}")))?;
    }
    Ok(())
}

fn kernel_linker(engine: &Engine) -> Result<Linker<Host>, ChunkcError> {
    let mut linker = Linker::new(engine);
    let link_err = |e: wasmi::errors::LinkerError| ChunkcError::Run(e.to_string());
    linker
        .func_wrap(
            KERNEL_MODULE,
            "print",
            |mut caller: Caller<'_, Host>, ptr: i32, len: i32| -> Result<(), wasmi::Error> {
                let memory = caller
                    .get_export("memory")
                    .and_then(Extern::into_memory)
                    .ok_or_else(|| wasmi::Error::new("atoll.print: chunk exports no memory"))?;
                let data = memory.data(&caller);
                let line = (ptr as u32 as usize)
                    .checked_add(len as u32 as usize)
                    .and_then(|end| data.get(ptr as u32 as usize..end))
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                    .ok_or_else(|| wasmi::Error::new("atoll.print: out of bounds"))?;
                caller.data_mut().printed.push(line);
                Ok(())
            },
        )
        .map_err(link_err)?;
    linker
        .func_wrap(KERNEL_MODULE, "cycles", |caller: Caller<'_, Host>| -> i64 {
            i64::try_from(caller.data().start.elapsed().as_nanos()).unwrap_or(i64::MAX)
        })
        .map_err(link_err)?;
    linker
        .func_wrap(KERNEL_MODULE, "yield", || {})
        .map_err(link_err)?;
    Ok(linker)
}
