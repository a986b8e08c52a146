//! `chunkc wast [--json] [--no-opt] [--schedule] [--guard] FILE...`: runs WebAssembly spec
//! scripts against atoll's x86-64 code generator, executing the generated code natively on the host.
//!
//! Modules are compiled with `atoll_pae` and instantiated in-process; the `spectest` module is
//! provided (no-op `print*` functions, the `global_*` globals).
//!
//! A module the generator refuses is *skipped* only when it needs a proposal on the allow-list
//! in [`super::wast_skip`] (the reason names the proposal), and so is every assertion that
//! targets it. Any other refusal is a failure, and so is every assertion on a module that
//! failed, a directive the runner does not handle, or a result of the wrong type.
//! `assert_invalid`/`assert_malformed` check that encoding or validation (with atoll's feature
//! set) fails; `assert_unlinkable` that linking fails.
//!
//! Failures and skips read `FILE:LINE: why`.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use atoll_pae::module::ExternalKind;
use atoll_pae::runtime::{Extern, Global, Instance, InvokeError, Memory, SigRegistry, Table};
use atoll_pae::vmctx::VmContext;
use atoll_pae::{CompileError, CompiledModule, Options, TrapCode, Ty};
use wast::core::{AbstractHeapType, HeapType, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

use super::wast_host::{self, HostError};
use super::{wast_skip, wast_v128};

/// Results for one script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    /// The script.
    pub file: String,
    /// Assertions that held.
    pub passed: u32,
    /// Assertions that did not.
    pub failed: u32,
    /// Modules and assertions skipped.
    pub skipped: u32,
    /// `FILE:LINE: what went wrong`.
    pub failures: Vec<String>,
    /// `FILE:LINE: why skipped` (the proposal the module needs).
    pub skips: Vec<String>,
}

impl FileReport {
    /// One JSON object on one line.
    pub fn json(&self) -> String {
        serde_json::json!({
            "file": self.file,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": self.failures,
            "skips": self.skips,
        })
        .to_string()
    }
}

/// Stack available to generated code per invocation, and the runner thread's stack.
const STACK_BUDGET_BYTES: usize = 4 << 20;
const RUNNER_STACK_BYTES: usize = 32 << 20;

/// How the runner compiles a module: [`wast_host::compile`], or in tests of the runner itself a
/// deliberately broken generator.
pub type CompileFn = fn(&[u8], &Options) -> Result<Arc<CompiledModule>, HostError>;

/// Runs the script `file` (its text in `text`) with `options`, on a thread with a stack large
/// enough for the stack budget.
pub fn run_script(file: &str, text: &str, options: Options) -> FileReport {
    run_script_with(file, text, options, wast_host::compile)
}

/// [`run_script`] with the generator `compile`.
pub fn run_script_with(file: &str, text: &str, options: Options, compile: CompileFn) -> FileReport {
    let (name, text) = (file.to_string(), text.to_string());
    let handle = std::thread::Builder::new()
        .stack_size(RUNNER_STACK_BYTES)
        .spawn(move || Runner::new(options, compile).run(&name, &text));
    match handle.map(|h| h.join()) {
        Ok(Ok(report)) => report,
        _ => FileReport {
            file: file.to_string(),
            failed: 1,
            failures: vec![format!("{file}: the runner thread panicked")],
            ..FileReport::default()
        },
    }
}

/// A module directive's instance, or why there is none.
enum Slot {
    Live(Box<Instance>),
    /// Skipped: needs a proposal on the allow-list (the reason).
    Skipped(String),
    /// Refused or failed to instantiate: assertions on it fail too.
    Failed(String),
}

/// Why a module has no instance.
enum NotLive {
    /// The module needs an allow-listed proposal: skip it and what targets it.
    Skip(String),
    /// An import is missing or does not match (what `assert_unlinkable` expects).
    Link(String),
    /// Anything else: a failure.
    Fail(String),
}

struct Runner {
    options: Options,
    compile: CompileFn,
    sigs: SigRegistry,
    instances: Vec<Slot>,
    current: Option<usize>,
    named: HashMap<String, usize>,
    registered: HashMap<String, usize>,
    /// Modules declared with `(module definition $name ...)`, by name.
    definitions: HashMap<String, Vec<u8>>,
    spectest: Spectest,
    report: FileReport,
    line: usize,
}

/// What running a directive produced.
enum Outcome {
    Values(Vec<(Ty, u128)>),
    Trap(TrapCode),
    Skip(String),
    Error(String),
}

impl From<NotLive> for Outcome {
    fn from(n: NotLive) -> Self {
        match n {
            NotLive::Skip(why) => Outcome::Skip(why),
            NotLive::Link(msg) | NotLive::Fail(msg) => Outcome::Error(msg),
        }
    }
}

unsafe extern "C" fn spectest_print(_: *mut VmContext, _: *mut c_void, _: *mut u64) -> u32 {
    0
}

/// The `spectest` module's memory and table, made on first use and shared by every module
/// of the script that imports them.
#[derive(Default)]
struct Spectest {
    memory: Option<Memory>,
    table: Option<Table>,
    /// Its memory is a guard-page reservation (the script's code has no bounds checks).
    guard_pages: bool,
}

impl Spectest {
    fn export(
        &mut self,
        name: &str,
        kind: &atoll_pae::module::ImportKind,
        m: &atoll_pae::ModuleDesc,
    ) -> Option<Extern> {
        use atoll_pae::module::{ImportKind, Limits};
        match (kind, name) {
            (ImportKind::Func(t), _) => {
                let ty = &m.types[*t as usize];
                let params: &[Ty] = match name {
                    "print" => &[],
                    "print_i32" => &[Ty::I32],
                    "print_i64" => &[Ty::I64],
                    "print_f32" => &[Ty::F32],
                    "print_f64" => &[Ty::F64],
                    "print_i32_f32" => &[Ty::I32, Ty::F32],
                    "print_f64_f64" => &[Ty::F64, Ty::F64],
                    _ => return None,
                };
                (ty.params == params && ty.results.is_empty()).then_some(Extern::Host {
                    func: spectest_print,
                    data: std::ptr::null_mut(),
                })
            }
            (ImportKind::Global(..), _) => {
                let (ty, bits) = match name {
                    "global_i32" => (Ty::I32, 666),
                    "global_i64" => (Ty::I64, 666),
                    "global_f32" => (Ty::F32, u64::from(666.6f32.to_bits())),
                    "global_f64" => (Ty::F64, 666.6f64.to_bits()),
                    _ => return None,
                };
                Some(Extern::Global(Global::new(ty, false, bits)))
            }
            (ImportKind::Memory(_), "memory") => {
                let limits = Limits {
                    min: 1,
                    max: Some(2),
                };
                let guard = self.guard_pages;
                let memory = self.memory.get_or_insert_with(|| {
                    let bytes = wast_host::memory_for(&Options {
                        guard_pages: guard,
                        ..Options::NONE
                    })
                    .expect("spectest memory");
                    Memory::new(bytes, limits).expect("one page of spectest memory")
                });
                Some(Extern::Memory(memory.clone()))
            }
            (ImportKind::Table(_), "table") => {
                let limits = Limits {
                    min: 10,
                    max: Some(20),
                };
                let table = self.table.get_or_insert_with(|| {
                    Table::new(Ty::FuncRef, limits, 0).expect("ten spectest table entries")
                });
                Some(Extern::Table(table.clone()))
            }
            _ => None,
        }
    }
}

/// The value of an `externref` the script calls `(ref.extern n)` (0 is the null reference).
fn extern_bits(n: u32) -> u64 {
    u64::from(n) + 1
}

fn arg_bits(arg: &WastArg<'_>) -> Option<u64> {
    match arg {
        WastArg::Core(WastArgCore::I32(v)) => Some(u64::from(*v as u32)),
        WastArg::Core(WastArgCore::I64(v)) => Some(*v as u64),
        WastArg::Core(WastArgCore::F32(v)) => Some(u64::from(v.bits)),
        WastArg::Core(WastArgCore::F64(v)) => Some(v.bits),
        WastArg::Core(WastArgCore::RefNull(_)) => Some(0),
        WastArg::Core(WastArgCore::RefExtern(n)) => Some(extern_bits(*n)),
        _ => None,
    }
}

/// Whether a result of type `ty` with `bits` is what `ret` expects. Expected values of another
/// type (GC references) never match: a module that compiled has none.
fn matches_ret(ret: &WastRet<'_>, ty: Ty, bits: u128) -> bool {
    let WastRet::Core(ret) = ret else {
        return false;
    };
    matches_core(ret, ty, bits)
}

fn matches_core(ret: &WastRetCore<'_>, ty: Ty, wide_bits: u128) -> bool {
    let bits = wide_bits as u64;
    match (ret, ty) {
        (WastRetCore::V128(p), Ty::V128) => wast_v128::matches(p, wide_bits),
        (WastRetCore::I32(v), Ty::I32) => bits as u32 == *v as u32,
        (WastRetCore::I64(v), Ty::I64) => bits == *v as u64,
        (WastRetCore::F32(p), Ty::F32) => wast_v128::f32_matches(p, bits as u32),
        (WastRetCore::F64(p), Ty::F64) => wast_v128::f64_matches(p, bits),
        (WastRetCore::RefNull(None), Ty::FuncRef | Ty::ExternRef) => bits == 0,
        (WastRetCore::RefNull(Some(h)), Ty::FuncRef) => {
            bits == 0
                && matches!(
                    h,
                    HeapType::Abstract {
                        ty: AbstractHeapType::Func,
                        ..
                    }
                )
        }
        (WastRetCore::RefNull(Some(h)), Ty::ExternRef) => {
            bits == 0
                && matches!(
                    h,
                    HeapType::Abstract {
                        ty: AbstractHeapType::Extern,
                        ..
                    }
                )
        }
        (WastRetCore::RefExtern(Some(n)), Ty::ExternRef) => bits == extern_bits(*n),
        (WastRetCore::RefExtern(None), Ty::ExternRef) | (WastRetCore::RefFunc(_), Ty::FuncRef) => {
            bits != 0
        }
        (WastRetCore::Either(any), _) => any.iter().any(|r| matches_core(r, ty, wide_bits)),
        _ => false,
    }
}

fn trap_matches(code: TrapCode, expected: &str) -> bool {
    let ours = code.message();
    ours.contains(expected) || expected.contains(ours)
}

impl Runner {
    fn new(options: Options, compile: CompileFn) -> Self {
        Self {
            options,
            compile,
            sigs: SigRegistry::default(),
            instances: Vec::new(),
            current: None,
            named: HashMap::new(),
            registered: HashMap::new(),
            definitions: HashMap::new(),
            spectest: Spectest {
                guard_pages: options.guard_pages,
                ..Spectest::default()
            },
            report: FileReport::default(),
            line: 0,
        }
    }

    fn pass(&mut self) {
        self.report.passed += 1;
    }

    fn fail(&mut self, why: impl std::fmt::Display) {
        self.report.failed += 1;
        let at = format!("{}:{}", self.report.file, self.line);
        self.report.failures.push(format!("{at}: {why}"));
    }

    fn skip(&mut self, why: impl std::fmt::Display) {
        self.report.skipped += 1;
        let at = format!("{}:{}", self.report.file, self.line);
        self.report.skips.push(format!("{at}: {why}"));
    }

    fn run(mut self, file: &str, text: &str) -> FileReport {
        self.report.file = file.to_string();
        let buf = match ParseBuffer::new(text) {
            Ok(b) => b,
            Err(e) => {
                self.fail(format!("parse error: {e}"));
                return self.report;
            }
        };
        let wast: Wast<'_> = match parser::parse(&buf) {
            Ok(w) => w,
            Err(e) => {
                self.fail(format!("parse error: {e}"));
                return self.report;
            }
        };
        for directive in wast.directives {
            self.line = directive.span().linecol_in(text).0 + 1;
            self.directive(directive);
        }
        self.report
    }

    /// Compiles and instantiates. A refusal is a skip only when [`wast_skip::classify`] finds
    /// an allow-listed proposal the module needs.
    fn instantiate(&mut self, bytes: &[u8]) -> Result<Box<Instance>, NotLive> {
        let module = match (self.compile)(bytes, &self.options) {
            Ok(m) => m,
            Err(HostError::Compile(
                e @ (CompileError::Invalid(_) | CompileError::Unsupported(_)),
            )) => {
                return Err(match wast_skip::classify(bytes, &e.to_string()) {
                    Ok(why) => NotLive::Skip(why),
                    Err(msg) => NotLive::Fail(msg),
                });
            }
            Err(e) => return Err(NotLive::Fail(e.to_string())),
        };
        let imports = self.resolve(&module)?;
        let mut instance = match wast_host::instantiate(module, &imports, &mut self.sigs) {
            Ok(i) => i,
            Err(HostError::Instantiate(atoll_pae::runtime::InstantiateError::Link(m))) => {
                return Err(NotLive::Link(format!("link: {m}")));
            }
            Err(e) => return Err(NotLive::Fail(e.to_string())),
        };
        instance.stack_budget_bytes = STACK_BUDGET_BYTES;
        Ok(instance)
    }

    fn resolve(&mut self, module: &Arc<CompiledModule>) -> Result<Vec<Extern>, NotLive> {
        let desc = &module.desc;
        let mut imports = Vec::new();
        for import in &desc.imports {
            let ext = if import.module == "spectest" {
                self.spectest.export(&import.name, &import.kind, desc)
            } else {
                match self
                    .registered
                    .get(&import.module)
                    .map(|&i| &mut self.instances[i])
                {
                    Some(Slot::Live(inst)) => inst.export_extern(&import.name, &import.kind, desc),
                    Some(Slot::Skipped(why)) => return Err(NotLive::Skip(why.clone())),
                    Some(Slot::Failed(why)) => return Err(NotLive::Fail(why.clone())),
                    None => None,
                }
            };
            match ext {
                Some(e) => imports.push(e),
                None => {
                    return Err(NotLive::Link(format!(
                        "unknown import `{}.{}`",
                        import.module, import.name
                    )));
                }
            }
        }
        Ok(imports)
    }

    fn add_instance(&mut self, name: Option<&str>, slot: Slot) {
        self.instances.push(slot);
        let i = self.instances.len() - 1;
        self.current = Some(i);
        if let Some(n) = name {
            self.named.insert(n.to_string(), i);
        }
    }

    fn module_directive(&mut self, mut wat: QuoteWat<'_>) {
        let name = wat.name().map(|id| id.name().to_string());
        let bytes = match wat.encode() {
            Ok(b) => b,
            Err(e) => return self.fail(format!("module does not encode: {e}")),
        };
        self.instantiate_named(name.as_deref(), &bytes);
    }

    fn instantiate_named(&mut self, name: Option<&str>, bytes: &[u8]) {
        let name = name.map(str::to_string);
        match self.instantiate(bytes) {
            Ok(inst) => {
                self.add_instance(name.as_deref(), Slot::Live(inst));
                self.pass();
            }
            Err(NotLive::Skip(why)) => {
                self.skip(&why);
                self.add_instance(name.as_deref(), Slot::Skipped(why));
            }
            Err(NotLive::Link(msg) | NotLive::Fail(msg)) => {
                self.fail(format!("module failed: {msg}"));
                let why = format!("the module at line {} failed", self.line);
                self.add_instance(name.as_deref(), Slot::Failed(why));
            }
        }
    }

    fn target(&mut self, module: Option<&str>) -> Result<&mut Box<Instance>, NotLive> {
        let index = match module {
            Some(n) => self.named.get(n).copied(),
            None => self.current,
        };
        match index.map(|i| &mut self.instances[i]) {
            Some(Slot::Live(inst)) => Ok(inst),
            Some(Slot::Skipped(why)) => Err(NotLive::Skip(why.clone())),
            Some(Slot::Failed(why)) => Err(NotLive::Fail(why.clone())),
            None => Err(NotLive::Fail("no module".into())),
        }
    }

    fn invoke(&mut self, call: &WastInvoke<'_>) -> Outcome {
        let inst = match self.target(call.module.map(|id| id.name())) {
            Ok(i) => i,
            Err(n) => return n.into(),
        };
        // A module that compiled has no GC-typed parameters; a v128 takes two slots.
        let args: Option<Vec<u64>> = call
            .args
            .iter()
            .map(|a| match a {
                WastArg::Core(WastArgCore::V128(v)) => {
                    Some(wast_v128::slots(wast_v128::const_bits(v)).to_vec())
                }
                _ => arg_bits(a).map(|b| vec![b]),
            })
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat());
        let Some(args) = args else {
            return Outcome::Error(format!(
                "`{}`: an argument is not a number, funcref or externref",
                call.name
            ));
        };
        let Some(index) = inst.module().desc.export_func(call.name) else {
            return Outcome::Error(format!("no export `{}`", call.name));
        };
        let results = inst.module().desc.func_type(index).results.clone();
        match inst.invoke(index, &args) {
            Ok(values) => {
                let mut at = 0;
                let mut out = Vec::with_capacity(results.len());
                for ty in results {
                    let mut bits = u128::from(values[at]);
                    if ty == Ty::V128 {
                        bits |= u128::from(values[at + 1]) << 64;
                    }
                    at += ty.slots();
                    out.push((ty, bits));
                }
                Outcome::Values(out)
            }
            Err(InvokeError::Trap(code)) => Outcome::Trap(code),
            Err(e) => Outcome::Error(format!("`{}`: {e}", call.name)),
        }
    }

    fn execute(&mut self, exec: &mut WastExecute<'_>) -> Outcome {
        match exec {
            WastExecute::Invoke(call) => self.invoke(call),
            WastExecute::Get { module, global, .. } => {
                let inst = match self.target(module.map(|id| id.name())) {
                    Ok(i) => i,
                    Err(n) => return n.into(),
                };
                let desc = &inst.module().desc;
                let Some(e) = desc
                    .exports
                    .iter()
                    .find(|e| e.kind == ExternalKind::Global && e.name == *global)
                else {
                    return Outcome::Error(format!("no global `{global}`"));
                };
                let ty = desc.globals[e.index as usize].ty;
                let bits = match inst.export_global(e.index) {
                    Some(Extern::Global(g)) => g.get_v128(),
                    _ => u128::from(inst.global(e.index)),
                };
                Outcome::Values(vec![(ty, bits)])
            }
            WastExecute::Wat(wat) => {
                let bytes = match wat.encode() {
                    Ok(b) => b,
                    Err(e) => return Outcome::Error(e.to_string()),
                };
                match self.instantiate(&bytes) {
                    Ok(_) => Outcome::Values(Vec::new()),
                    Err(NotLive::Skip(why)) => Outcome::Skip(why),
                    Err(NotLive::Fail(msg)) if msg.starts_with("trap during instantiation: ") => {
                        Outcome::Trap(trap_from_message(&msg))
                    }
                    Err(n) => n.into(),
                }
            }
        }
    }

    fn directive(&mut self, directive: WastDirective<'_>) {
        match directive {
            WastDirective::Module(wat) => self.module_directive(wat),
            WastDirective::ModuleDefinition(mut wat) => {
                let name = wat.name().map(|id| id.name().to_string());
                match (wat.encode(), name) {
                    (Ok(bytes), Some(name)) => {
                        self.definitions.insert(name, bytes);
                    }
                    // An unnamed definition can never be instantiated: only check it compiles.
                    (Ok(bytes), None) => {
                        if let Err(e) = (self.compile)(&bytes, &self.options) {
                            self.fail(format!("module definition failed: {e}"));
                        }
                    }
                    (Err(e), _) => self.fail(format!("module does not encode: {e}")),
                }
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let bytes = module.and_then(|m| self.definitions.get(m.name()).cloned());
                let Some(bytes) = bytes else {
                    return self.fail("module instance: no such module definition");
                };
                self.instantiate_named(instance.map(|id| id.name()), &bytes);
            }
            WastDirective::Register { name, module, .. } => {
                let index = match module {
                    Some(id) => self.named.get(id.name()).copied(),
                    None => self.current,
                };
                match index {
                    Some(i) => {
                        self.registered.insert(name.to_string(), i);
                    }
                    None => self.fail("register: no module"),
                }
            }
            WastDirective::Invoke(call) => match self.invoke(&call) {
                Outcome::Values(_) | Outcome::Trap(_) => {}
                Outcome::Skip(why) => self.skip(why),
                Outcome::Error(msg) => self.fail(msg),
            },
            WastDirective::AssertReturn {
                mut exec, results, ..
            } => match self.execute(&mut exec) {
                Outcome::Values(values) => {
                    if values.len() != results.len() {
                        return self.fail(format!(
                            "expected {} results, got {}",
                            results.len(),
                            values.len()
                        ));
                    }
                    for (i, (ret, &(ty, bits))) in results.iter().zip(&values).enumerate() {
                        if !matches_ret(ret, ty, bits) {
                            return self.fail(format!(
                                "result {i}: got {ty:?} {bits:#x}, expected {ret:?}"
                            ));
                        }
                    }
                    self.pass();
                }
                Outcome::Trap(code) => self.fail(format!("unexpected trap: {code}")),
                Outcome::Skip(why) => self.skip(why),
                Outcome::Error(msg) => self.fail(msg),
            },
            WastDirective::AssertTrap {
                mut exec, message, ..
            } => match self.execute(&mut exec) {
                Outcome::Trap(code) if trap_matches(code, message) => self.pass(),
                Outcome::Trap(code) => {
                    self.fail(format!("trapped with `{code}`, expected `{message}`"))
                }
                Outcome::Values(v) => {
                    self.fail(format!("returned {v:?}, expected trap `{message}`"))
                }
                Outcome::Skip(why) => self.skip(why),
                Outcome::Error(msg) => self.fail(msg),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Outcome::Trap(TrapCode::StackOverflow) => self.pass(),
                Outcome::Trap(code) => {
                    self.fail(format!("trapped with `{code}`, expected `{message}`"))
                }
                Outcome::Values(_) => self.fail(format!("returned, expected `{message}`")),
                Outcome::Skip(why) => self.skip(why),
                Outcome::Error(msg) => self.fail(msg),
            },
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            }
            | WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            } => {
                let Ok(bytes) = module.encode() else {
                    return self.pass();
                };
                match (self.compile)(&bytes, &self.options) {
                    Err(_) => self.pass(),
                    Ok(_) => self.fail(format!("module compiled, expected `{message}`")),
                }
            }
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => {
                let bytes = match module.encode() {
                    Ok(b) => b,
                    Err(e) => return self.fail(e.to_string()),
                };
                match self.instantiate(&bytes) {
                    Ok(_) => self.fail(format!("module linked, expected `{message}`")),
                    Err(NotLive::Skip(why)) => self.skip(why),
                    Err(NotLive::Link(_)) => self.pass(),
                    Err(NotLive::Fail(msg)) => {
                        self.fail(format!("expected a link error (`{message}`), got: {msg}"))
                    }
                }
            }
            other => {
                let what = format!("{other:?}");
                let what = what
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap_or("directive")
                    .to_string();
                self.fail(format!("`{what}` is not supported by the runner"));
            }
        }
    }
}

fn trap_from_message(msg: &str) -> TrapCode {
    [
        TrapCode::MemoryOutOfBounds,
        TrapCode::TableAccessOutOfBounds,
        TrapCode::Unreachable,
        TrapCode::DivideByZero,
        TrapCode::IntegerOverflow,
        TrapCode::InvalidConversion,
        TrapCode::TableOutOfBounds,
        TrapCode::UninitializedElement,
        TrapCode::IndirectCallTypeMismatch,
        TrapCode::StackOverflow,
    ]
    .into_iter()
    .find(|c| msg.contains(c.message()))
    .unwrap_or(TrapCode::HostError)
}

/// Runs each file and writes the reports; returns whether every assertion held.
pub fn run_files(
    files: &[String],
    as_json: bool,
    options: Options,
    out: &mut dyn std::io::Write,
) -> Result<bool, super::ChunkcError> {
    let mut ok = true;
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| super::ChunkcError::io(file, e))?;
        let report = run_script(file, &text, options);
        ok &= report.failed == 0;
        let write_err = |e| super::ChunkcError::io("<stdout>", e);
        if as_json {
            writeln!(out, "{}", report.json()).map_err(write_err)?;
        } else {
            writeln!(
                out,
                "{}: passed {}, failed {}, skipped {}",
                report.file, report.passed, report.failed, report.skipped
            )
            .map_err(write_err)?;
            for f in &report.failures {
                writeln!(out, "  FAIL {f}").map_err(write_err)?;
            }
            for s in &report.skips {
                writeln!(out, "  skip {s}").map_err(write_err)?;
            }
        }
    }
    Ok(ok)
}
