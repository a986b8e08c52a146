//! Differential test on the default chunk set: every expectation in `chunks/default.toml` runs
//! through atoll's code generator (optimized and unoptimized) and through wasmi, and both must
//! agree with each other and with the expected results, prints and traps.
#![cfg(target_arch = "x86_64")]

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::Arc;

use atoll_pae::runtime::{Extern, Instance, InvokeError, SigRegistry};
use atoll_pae::vmctx::VmContext;
use atoll_pae::{ArgProfile, CompiledModule, Options, TrapCode};
use chunk_image::{Image, write_image};
use tools::chunkc::build::build_chunks;
use tools::chunkc::manifest;
use tools::chunkc::run::{Outcome, run_values};
use tools::chunkc::wast_host;

fn manifest_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chunks/default.toml")
}

/// `atoll.print(ptr, len)`: appends the bytes as a line to the `Vec<String>` in `data`.
unsafe extern "C" fn print(vm: *mut VmContext, data: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: generated code passes its live vmctx, our `data` and two argument slots.
    unsafe {
        let (ptr, len) = (*slots as u32 as u64, *slots.add(1) as u32 as u64);
        if ptr + len > (*vm).memory_size_bytes {
            return TrapCode::MemoryOutOfBounds as u32;
        }
        let bytes = std::slice::from_raw_parts((*vm).memory_base.add(ptr as usize), len as usize);
        (*data.cast::<Vec<String>>()).push(String::from_utf8_lossy(bytes).into_owned());
    }
    0
}

unsafe extern "C" fn cycles(_: *mut VmContext, _: *mut c_void, slots: *mut u64) -> u32 {
    // SAFETY: one result slot.
    unsafe { *slots = 1_000 };
    0
}

unsafe extern "C" fn yield_now(_: *mut VmContext, _: *mut c_void, _: *mut u64) -> u32 {
    0
}

struct World {
    compiled: HashMap<String, Arc<CompiledModule>>,
    instances: HashMap<String, Box<Instance>>,
    sigs: SigRegistry,
    /// Boxed so host functions can keep a pointer to it while `World` moves.
    #[allow(clippy::box_collection)]
    printed: Box<Vec<String>>,
}

impl World {
    fn instance(&mut self, name: &str) -> &mut Box<Instance> {
        if !self.instances.contains_key(name) {
            let module = self.compiled[name].clone();
            let mut imports = Vec::new();
            for import in &module.desc.imports {
                let ext = if import.module == "atoll" {
                    let func = match import.name.as_str() {
                        "print" => print,
                        "cycles" => cycles,
                        _ => yield_now,
                    };
                    Extern::Host {
                        func,
                        data: (&mut *self.printed as *mut Vec<String>).cast(),
                    }
                } else {
                    // Functions, and the memories, tables and globals chunks share.
                    let provider = self.instance(&import.module);
                    provider
                        .export_extern(&import.name, &import.kind, &module.desc)
                        .expect("provider export")
                };
                imports.push(ext);
            }
            let inst = wast_host::instantiate(module, &imports, &mut self.sigs)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            self.instances.insert(name.to_string(), inst);
        }
        self.instances.get_mut(name).expect("just inserted")
    }
}

fn run(options: Options) {
    run_with(options, false);
}

/// `specialize`: each chunk specialized on the parameters that had one value in all of its
/// expectations' calls (the recorded profile), so those calls run the folded bodies.
fn run_with(options: Options, specialize: bool) {
    let mut specialized_params = 0;
    let lazy_before = wast_host::lazily_assembled();
    let chunks = build_chunks(&manifest_path()).unwrap_or_else(|e| panic!("build: {e}"));
    let image_bytes = write_image(&chunks).expect("image");
    let image = Image::parse(&image_bytes).expect("parse");
    let file = manifest::load(&manifest_path()).expect("manifest");
    let compiled: HashMap<String, Arc<CompiledModule>> = chunks
        .iter()
        .map(|c| {
            let m = wast_host::compile(&c.module, &options)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            if !specialize {
                return (c.name.clone(), m);
            }
            // The recorded profile: every expectation's call of this chunk.
            let mut profile = ArgProfile::new();
            let entry = file.chunks.iter().find(|e| e.name == c.name);
            for expect in entry.map_or(&[][..], |e| &e.expect[..]) {
                let export = &image
                    .chunk(&c.name)
                    .and_then(|v| v.manifest.exports.iter().find(|e| e.name == expect.call))
                    .expect("export");
                let args = expect.arg_values(&export.sig.params).expect("args fit");
                let func = m.desc.export_func(&expect.call).expect("export");
                let raw: Vec<u64> = args.iter().map(|v| v.to_bits()).collect();
                profile.record(func, &raw);
            }
            let specs = profile.constant_params(1);
            specialized_params += specs.len();
            let m = atoll_pae::compile_specialized(&c.module, &options, &specs)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            (c.name.clone(), Arc::new(m))
        })
        .collect();
    if specialize {
        assert!(
            specialized_params >= 8,
            "only {specialized_params} parameters specialized"
        );
    }
    let mut checked = 0;
    for entry in &file.chunks {
        for expect in &entry.expect {
            let label = format!("{}.{}{:?}", entry.name, expect.call, expect.args);
            let sig = &image
                .chunk(&entry.name)
                .and_then(|c| c.manifest.exports.iter().find(|e| e.name == expect.call))
                .expect("export")
                .sig;
            let args = expect
                .arg_values(&sig.params)
                .unwrap_or_else(|| panic!("{label}: arguments do not fit"));
            let reference = run_values(&image, &entry.name, &expect.call, &args).expect("wasmi");
            let mut world = World {
                compiled: compiled.clone(),
                instances: HashMap::new(),
                sigs: SigRegistry::default(),
                printed: Box::default(),
            };
            let inst = world.instance(&entry.name);
            let index = inst
                .module()
                .desc
                .export_func(&expect.call)
                .expect("export");
            let raw: Vec<u64> = args.iter().map(|v| v.to_bits()).collect();
            let ours = inst.invoke(index, &raw);
            assert_eq!(*world.printed, reference.printed, "{label}: printed lines");
            match (&reference.outcome, ours) {
                (Outcome::Returned(want), Ok(got)) => {
                    let want: Vec<u64> = want.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, want, "{label}: results");
                }
                (Outcome::Trapped(msg), Err(InvokeError::Trap(code))) => {
                    if let Some(t) = &expect.trap {
                        assert!(
                            code.message().contains(t.as_str()),
                            "{label}: trap `{code}` vs `{msg}`"
                        );
                    }
                }
                (r, o) => panic!("{label}: wasmi {r:?}, atoll {o:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} expectations");
    if options.lazy {
        let lazily = wast_host::lazily_assembled() - lazy_before;
        assert!(
            lazily >= checked,
            "only {lazily} functions assembled lazily"
        );
    }
}

#[test]
fn default_set_agrees_with_wasmi_optimized() {
    run(Options::default());
}

#[test]
fn default_set_agrees_with_wasmi_unoptimized() {
    run(Options::NONE);
}

#[test]
fn default_set_agrees_with_wasmi_with_scheduling() {
    run(Options {
        schedule: true,
        ..Options::default()
    });
}

#[test]
fn default_set_agrees_with_wasmi_with_every_function_assembled_lazily() {
    run(Options {
        lazy: true,
        ..Options::default()
    });
}

#[test]
fn default_set_agrees_with_wasmi_specialized_on_the_recorded_arguments() {
    run_with(Options::default(), true);
}
