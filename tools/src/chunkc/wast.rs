//! `chunkc wast [--json] [--no-opt] FILE...`: runs WebAssembly spec scripts against atoll's
//! x86-64 code generator, executing the generated code natively on the host.
//!
//! Modules are compiled with `atoll_pae` and instantiated in-process; the `spectest` module is
//! provided (no-op `print*` functions, the `global_*` globals). A module that fails to compile
//! because it needs an unsupported feature is *skipped* with the reason, and so is every
//! assertion that targets it. `assert_invalid`/`assert_malformed` check that encoding or
//! validation (with atoll's feature set) fails; `assert_unlinkable` that linking fails.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use atoll_pae::module::ExternalKind;
use atoll_pae::runtime::{Extern, Instance, SigRegistry};
use atoll_pae::vmctx::VmContext;
use atoll_pae::{CompileError, FuncType, Options, TrapCode, Ty};
use wast::core::{NanPattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

use super::wast_host::{self, HostError};

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
    /// `line: what went wrong`.
    pub failures: Vec<String>,
    /// `line: why skipped`.
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

/// Runs the script `file` (its text in `text`) with `options`, on a thread with a stack large
/// enough for the stack budget.
pub fn run_script(file: &str, text: &str, options: Options) -> FileReport {
    let (file, text) = (file.to_string(), text.to_string());
    let handle = std::thread::Builder::new()
        .stack_size(RUNNER_STACK_BYTES)
        .spawn(move || Runner::new(options).run(&file, &text));
    match handle.map(|h| h.join()) {
        Ok(Ok(report)) => report,
        _ => FileReport {
            failed: 1,
            failures: vec!["the runner thread panicked".into()],
            ..FileReport::default()
        },
    }
}

enum Slot {
    Live(Box<Instance>),
    Skipped(String),
}

struct Runner {
    options: Options,
    sigs: SigRegistry,
    instances: Vec<Slot>,
    current: Option<usize>,
    named: HashMap<String, usize>,
    registered: HashMap<String, usize>,
    report: FileReport,
    line: usize,
}

/// What running a directive produced.
enum Outcome {
    Values(Vec<(Ty, u64)>),
    Trap(TrapCode),
    Skip(String),
    Error(String),
}

unsafe extern "C" fn spectest_print(_: *mut VmContext, _: *mut c_void, _: *mut u64) -> u32 {
    0
}

fn spectest(
    name: &str,
    kind: &atoll_pae::module::ImportKind,
    m: &atoll_pae::ModuleDesc,
) -> Option<Extern> {
    use atoll_pae::module::ImportKind;
    match kind {
        ImportKind::Func(t) => {
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
        ImportKind::Global(ty, false) => match (name, ty) {
            ("global_i32", Ty::I32) => Some(Extern::Global(666)),
            ("global_i64", Ty::I64) => Some(Extern::Global(666)),
            ("global_f32", Ty::F32) => Some(Extern::Global(u64::from(666.6f32.to_bits()))),
            ("global_f64", Ty::F64) => Some(Extern::Global(666.6f64.to_bits())),
            _ => None,
        },
        _ => None,
    }
}

fn arg_bits(arg: &WastArg<'_>) -> Option<u64> {
    match arg {
        WastArg::Core(WastArgCore::I32(v)) => Some(u64::from(*v as u32)),
        WastArg::Core(WastArgCore::I64(v)) => Some(*v as u64),
        WastArg::Core(WastArgCore::F32(v)) => Some(u64::from(v.bits)),
        WastArg::Core(WastArgCore::F64(v)) => Some(v.bits),
        _ => None,
    }
}

fn matches_ret(ret: &WastRet<'_>, ty: Ty, bits: u64) -> Option<bool> {
    let WastRet::Core(ret) = ret else { return None };
    Some(match (ret, ty) {
        (WastRetCore::I32(v), Ty::I32) => bits as u32 == *v as u32,
        (WastRetCore::I64(v), Ty::I64) => bits == *v as u64,
        (WastRetCore::F32(p), Ty::F32) => {
            let b = bits as u32;
            let nan = b & 0x7FFF_FFFF > 0x7F80_0000;
            match p {
                NanPattern::CanonicalNan => b & 0x7FFF_FFFF == 0x7FC0_0000,
                NanPattern::ArithmeticNan => nan && b & 0x0040_0000 != 0,
                NanPattern::Value(v) => b == v.bits,
            }
        }
        (WastRetCore::F64(p), Ty::F64) => {
            let nan = bits & (u64::MAX >> 1) > 0x7FF0_0000_0000_0000;
            match p {
                NanPattern::CanonicalNan => bits & (u64::MAX >> 1) == 0x7FF8_0000_0000_0000,
                NanPattern::ArithmeticNan => nan && bits & 0x0008_0000_0000_0000 != 0,
                NanPattern::Value(v) => bits == v.bits,
            }
        }
        _ => return None,
    })
}

fn trap_matches(code: TrapCode, expected: &str) -> bool {
    let ours = code.message();
    ours.contains(expected) || expected.contains(ours)
}

impl Runner {
    fn new(options: Options) -> Self {
        Self {
            options,
            sigs: SigRegistry::default(),
            instances: Vec::new(),
            current: None,
            named: HashMap::new(),
            registered: HashMap::new(),
            report: FileReport::default(),
            line: 0,
        }
    }

    fn pass(&mut self) {
        self.report.passed += 1;
    }

    fn fail(&mut self, why: impl std::fmt::Display) {
        self.report.failed += 1;
        self.report
            .failures
            .push(format!("line {}: {why}", self.line));
    }

    fn skip(&mut self, why: impl std::fmt::Display) {
        self.report.skipped += 1;
        self.report.skips.push(format!("line {}: {why}", self.line));
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

    /// Compiles and instantiates; `Err(Ok(reason))` = skipped, `Err(Err(msg))` = failed.
    fn instantiate(&mut self, bytes: &[u8]) -> Result<Box<Instance>, Result<String, String>> {
        let module = match wast_host::compile(bytes, &self.options) {
            Ok(m) => m,
            Err(HostError::Compile(CompileError::Invalid(m) | CompileError::Unsupported(m))) => {
                return Err(Ok(format!("module skipped: {m}")));
            }
            Err(e) => return Err(Err(e.to_string())),
        };
        let imports = self.resolve(&module)?;
        let mut instance = match wast_host::instantiate(module, &imports, &mut self.sigs) {
            Ok(i) => i,
            Err(HostError::Instantiate(atoll_pae::runtime::InstantiateError::Link(m))) => {
                return Err(Err(format!("link: {m}")));
            }
            Err(e) => return Err(Err(e.to_string())),
        };
        instance.stack_budget_bytes = STACK_BUDGET_BYTES;
        Ok(instance)
    }

    fn resolve(
        &mut self,
        module: &Arc<atoll_pae::CompiledModule>,
    ) -> Result<Vec<Extern>, Result<String, String>> {
        let desc = &module.desc;
        let mut imports = Vec::new();
        for import in &desc.imports {
            use atoll_pae::module::ImportKind;
            if matches!(import.kind, ImportKind::Memory | ImportKind::Table) {
                return Err(Ok(format!(
                    "module skipped: imports a memory or table (`{}.{}`), which chunks cannot",
                    import.module, import.name
                )));
            }
            let ext = if import.module == "spectest" {
                spectest(&import.name, &import.kind, desc)
            } else {
                match self
                    .registered
                    .get(&import.module)
                    .map(|&i| &mut self.instances[i])
                {
                    Some(Slot::Live(inst)) => export_extern(inst, &import.name, &import.kind, desc),
                    Some(Slot::Skipped(why)) => return Err(Ok(why.clone())),
                    None => None,
                }
            };
            match ext {
                Some(e) => imports.push(e),
                None => {
                    return Err(Err(format!(
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
        match self.instantiate(&bytes) {
            Ok(inst) => {
                self.add_instance(name.as_deref(), Slot::Live(inst));
                self.pass();
            }
            Err(Ok(why)) => {
                self.skip(&why);
                self.add_instance(name.as_deref(), Slot::Skipped(why));
            }
            Err(Err(msg)) => {
                self.fail(format!("module failed: {msg}"));
                self.add_instance(
                    name.as_deref(),
                    Slot::Skipped(format!("module failed: {msg}")),
                );
            }
        }
    }

    fn target(
        &mut self,
        module: Option<&str>,
    ) -> Result<&mut Box<Instance>, Result<String, String>> {
        let index = match module {
            Some(n) => self.named.get(n).copied(),
            None => self.current,
        };
        match index.map(|i| &mut self.instances[i]) {
            Some(Slot::Live(inst)) => Ok(inst),
            Some(Slot::Skipped(why)) => Err(Ok(why.clone())),
            None => Err(Err("no module".into())),
        }
    }

    fn invoke(&mut self, call: &WastInvoke<'_>) -> Outcome {
        let args: Option<Vec<u64>> = call.args.iter().map(arg_bits).collect();
        let Some(args) = args else {
            return Outcome::Skip("reference-typed argument".into());
        };
        let inst = match self.target(call.module.map(|id| id.name())) {
            Ok(i) => i,
            Err(Ok(why)) => return Outcome::Skip(why),
            Err(Err(msg)) => return Outcome::Error(msg),
        };
        let Some(index) = inst.module().desc.export_func(call.name) else {
            return Outcome::Error(format!("no export `{}`", call.name));
        };
        let results = inst.module().desc.func_type(index).results.clone();
        match inst.invoke(index, &args) {
            Ok(values) => Outcome::Values(results.into_iter().zip(values).collect()),
            Err(code) => Outcome::Trap(code),
        }
    }

    fn execute(&mut self, exec: &mut WastExecute<'_>) -> Outcome {
        match exec {
            WastExecute::Invoke(call) => self.invoke(call),
            WastExecute::Get { module, global, .. } => {
                let inst = match self.target(module.map(|id| id.name())) {
                    Ok(i) => i,
                    Err(Ok(why)) => return Outcome::Skip(why),
                    Err(Err(msg)) => return Outcome::Error(msg),
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
                Outcome::Values(vec![(ty, inst.global(e.index))])
            }
            WastExecute::Wat(wat) => {
                let bytes = match wat.encode() {
                    Ok(b) => b,
                    Err(e) => return Outcome::Error(e.to_string()),
                };
                match self.instantiate(&bytes) {
                    Ok(_) => Outcome::Values(Vec::new()),
                    Err(Ok(why)) => Outcome::Skip(why),
                    Err(Err(msg)) => match msg.strip_prefix("trap during instantiation: ") {
                        Some(_) => Outcome::Trap(trap_from_message(&msg)),
                        None => Outcome::Error(msg),
                    },
                }
            }
        }
    }

    fn directive(&mut self, directive: WastDirective<'_>) {
        match directive {
            WastDirective::Module(wat) => self.module_directive(wat),
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
                        match matches_ret(ret, ty, bits) {
                            Some(true) => {}
                            Some(false) => {
                                return self.fail(format!(
                                    "result {i}: got {ty:?} {bits:#x}, expected {ret:?}"
                                ));
                            }
                            None => return self.skip("reference-typed result"),
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
                match atoll_pae::compile(&bytes, &self.options) {
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
                    Err(Ok(why)) => self.skip(why),
                    Err(Err(_)) => self.pass(),
                }
            }
            other => {
                let what = format!("{other:?}");
                let what = what
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap_or("directive")
                    .to_string();
                self.skip(format!("`{what}` is not supported by the runner"));
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

fn export_extern(
    inst: &mut Instance,
    name: &str,
    kind: &atoll_pae::module::ImportKind,
    importer: &atoll_pae::ModuleDesc,
) -> Option<Extern> {
    use atoll_pae::module::ImportKind;
    let module = inst.module().clone();
    let desc = &module.desc;
    let export = desc.exports.iter().find(|e| e.name == name)?;
    match (kind, export.kind) {
        (ImportKind::Func(t), ExternalKind::Func) => {
            let want: &FuncType = &importer.types[*t as usize];
            (desc.func_type(export.index) == want).then(|| inst.func_ref(export.index))
        }
        (ImportKind::Global(ty, mutable), ExternalKind::Global) => {
            let g = &desc.globals[export.index as usize];
            (g.ty == *ty && g.mutable == *mutable)
                .then(|| Extern::Global(inst.global(export.index)))
        }
        _ => None,
    }
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
