//! WASI programs compiled by atoll's code generator and run natively on the host: the same
//! `atoll-wasi` functions, bound as host functions of the generated code (`pae_link`).
//! `proc_exit` leaves generated code as a host trap; the context's exit code tells it apart
//! from a real trap.

use std::collections::BTreeMap;

use atoll_pae::runtime::{Instance, InstantiateError, InvokeError, SigRegistry};
use atoll_pae::{Options, TrapCode};
use atoll_wasi::MODULE;
use atoll_wasi::pae_link::WasiLink;

use super::{Ended, RunOutput, Setup, context, finish};
use crate::chunkc::ChunkcError;
use crate::chunkc::wast_host::{self, HostError};

/// How a trap that may be `proc_exit` ended the program.
fn trap_or_exit(link: &mut WasiLink, trap: TrapCode) -> Ended {
    match (trap, link.ctx().exit_code()) {
        (TrapCode::HostError, Some(code)) => Ended::Exit(code),
        _ => Ended::Trap(trap.message().to_string()),
    }
}

/// Runs the command module `wasm` (its `_start`) compiled with atoll-pae, after instantiating
/// each preload `(name, module)` whose exported functions satisfy imports from `name`.
pub fn run(
    wasm: &[u8],
    preloads: &[(String, Vec<u8>)],
    setup: &Setup,
) -> Result<RunOutput, ChunkcError> {
    run_with(wasm, preloads, setup, &Options::default())
}

/// [`run`] with the code generator's `options` (e.g. `lazy`: every function assembled at its
/// first call).
pub fn run_with(
    wasm: &[u8],
    preloads: &[(String, Vec<u8>)],
    setup: &Setup,
    options: &Options,
) -> Result<RunOutput, ChunkcError> {
    let (ctx, captured) = context(setup)?;
    // Declared before the instances, so dropped after them: their imports point into it.
    let mut link = WasiLink::new(ctx);
    let mut sigs = SigRegistry::default();
    let mut loaded: BTreeMap<String, Box<Instance>> = BTreeMap::new();
    let modules = preloads
        .iter()
        .map(|(n, b)| (Some(n.as_str()), b.as_slice()))
        .chain([(None, wasm)]);
    for (name, bytes) in modules {
        let what = name.map_or_else(|| "the program".to_string(), |n| format!("preload `{n}`"));
        let module = wast_host::compile(bytes, options)
            .map_err(|e| ChunkcError::Run(format!("{what}: {e}")))?;
        let mut externs = Vec::new();
        for import in &module.desc.imports {
            let ext = if import.module == MODULE {
                link.extern_for(&import.name)
            } else {
                loaded.get_mut(&import.module).and_then(|inst| {
                    let index = inst.module().desc.export_func(&import.name)?;
                    Some(inst.func_ref(index))
                })
            };
            externs.push(ext.ok_or_else(|| {
                ChunkcError::Run(format!(
                    "{what}: unknown import `{}.{}`",
                    import.module, import.name
                ))
            })?);
        }
        let instance = match wast_host::instantiate(module, &externs, &mut sigs) {
            Ok(i) => i,
            Err(HostError::Instantiate(InstantiateError::Trap(t))) => {
                return Ok(finish(trap_or_exit(&mut link, t), captured));
            }
            Err(e) => return Err(ChunkcError::Run(format!("{what}: {e}"))),
        };
        match name {
            Some(n) => {
                loaded.insert(n.to_string(), instance);
            }
            None => {
                let mut instance = instance;
                let start = instance
                    .module()
                    .desc
                    .export_func("_start")
                    .ok_or_else(|| {
                        ChunkcError::Run("the module exports no `_start` function".into())
                    })?;
                let ended = match instance.invoke(start, &[]) {
                    Ok(_) => Ended::Exit(0),
                    Err(InvokeError::Trap(t)) => trap_or_exit(&mut link, t),
                    Err(e) => return Err(ChunkcError::Run(e.to_string())),
                };
                drop(instance);
                drop(loaded);
                return Ok(finish(ended, captured));
            }
        }
    }
    Err(ChunkcError::Run("nothing to run".into()))
}
