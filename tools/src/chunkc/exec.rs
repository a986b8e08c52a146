//! `chunkc exec [OPTIONS] FILE.wasm [ARGS...]`: runs a WASI command module straight from a
//! file, the way `wasmtime run` does: stdin, stdout and stderr passed through, the program's
//! exit code as chunkc's own (134 after a trap).
//!
//! Options (before `FILE`, or anywhere before a `--` after which everything is an argument):
//! `--native` runs atoll's code generator instead of wasmi (`--lazy`: assembling each function
//! at its first call); `--dir HOST[::GUEST]` preopens a
//! read-only snapshot of a host directory (`GUEST` defaults to `HOST`); `--preload
//! NAME=MODULE` instantiates another module (`.wasm` or `.wat`) whose exports satisfy imports
//! from `NAME`; `--env KEY=VALUE` sets an environment variable (given again, the later value
//! replaces the earlier one in place).

use std::path::Path;
use std::sync::Arc;

use crate::wasi::{self, Input, Output, RunOutput, Setup};

use super::ChunkcError;

/// A parsed `exec` command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecArgs {
    /// The module file.
    pub file: String,
    /// Program arguments (after `argv[0]`).
    pub args: Vec<String>,
    /// Run atoll's code generator.
    pub native: bool,
    /// With `native`: assemble every function at its first call.
    pub lazy: bool,
    /// `(host dir, guest name)` pairs.
    pub dirs: Vec<(String, String)>,
    /// `(import module name, module file)` pairs.
    pub preloads: Vec<(String, String)>,
    /// Environment.
    pub env: Vec<String>,
}

/// Parses `exec`'s arguments.
pub fn parse(args: &[String]) -> Result<ExecArgs, ChunkcError> {
    let mut out = ExecArgs::default();
    let mut it = args.iter();
    let mut verbatim = false;
    let usage = |m: &str| ChunkcError::Usage(format!("exec: {m}"));
    while let Some(a) = it.next() {
        if verbatim {
            out.positional(a);
            continue;
        }
        match a.as_str() {
            "--" => verbatim = true,
            "--native" => out.native = true,
            "--lazy" => out.lazy = true,
            "--dir" => {
                let spec = it
                    .next()
                    .ok_or_else(|| usage("--dir needs HOST_DIR[::GUEST_DIR]"))?;
                let (host, guest) = spec.split_once("::").unwrap_or((spec, spec));
                if host.is_empty() || guest.is_empty() {
                    return Err(usage("--dir needs HOST_DIR[::GUEST_DIR]"));
                }
                out.dirs.push((host.into(), guest.into()));
            }
            "--preload" => {
                let spec = it
                    .next()
                    .ok_or_else(|| usage("--preload needs NAME=MODULE"))?;
                let (name, file) = spec
                    .split_once('=')
                    .filter(|(n, f)| !n.is_empty() && !f.is_empty())
                    .ok_or_else(|| usage("--preload needs NAME=MODULE"))?;
                out.preloads.push((name.into(), file.into()));
            }
            "--env" => {
                let kv = it
                    .next()
                    .filter(|kv| atoll_wasi::env::valid_var(kv))
                    .ok_or_else(|| usage("--env needs KEY=VALUE"))?;
                out.env.push(kv.clone());
            }
            other if other.starts_with("--") && out.file.is_empty() => {
                return Err(usage(&format!("unknown option `{other}`")));
            }
            _ => out.positional(a),
        }
    }
    if out.file.is_empty() {
        return Err(usage("needs FILE.wasm"));
    }
    Ok(out)
}

impl ExecArgs {
    /// The file first, then program arguments.
    fn positional(&mut self, a: &str) {
        if self.file.is_empty() {
            self.file = a.into();
        } else {
            self.args.push(a.into());
        }
    }
}

/// Reads a module: `.wat` text is compiled, anything else is taken as binary.
pub fn read_module(path: &str) -> Result<Vec<u8>, ChunkcError> {
    if path.ends_with(".wat") {
        wat::parse_file(path).map_err(|e| ChunkcError::Wat(e.to_string()))
    } else {
        std::fs::read(path).map_err(|e| ChunkcError::io(path, e))
    }
}

/// Runs it with stdio passed through.
pub fn exec(a: &ExecArgs) -> Result<RunOutput, ChunkcError> {
    let wasm = read_module(&a.file)?;
    let preloads = a
        .preloads
        .iter()
        .map(|(n, f)| Ok((n.clone(), read_module(f)?)))
        .collect::<Result<Vec<_>, ChunkcError>>()?;
    let mut preopens = Vec::new();
    for (host, guest) in &a.dirs {
        preopens.push((guest.clone(), Arc::new(wasi::load_dir(Path::new(host))?)));
    }
    let mut argv = vec![a.file.clone()];
    argv.extend(a.args.iter().cloned());
    let setup = Setup {
        args: argv,
        env: atoll_wasi::env::merge([], a.env.iter().map(String::as_str))
            .map_err(|e| ChunkcError::Usage(format!("exec: --env: {e}")))?,
        preopens,
        stdin: Input::Inherit,
        output: Output::Inherit,
    };
    if a.lazy && !a.native {
        return Err(ChunkcError::Usage("exec: --lazy needs --native".into()));
    }
    run_engine_with(&wasm, &preloads, &setup, a.native, a.lazy)
}

/// Runs a command module with wasmi or, with `native`, atoll's code generator.
pub fn run_engine(
    wasm: &[u8],
    preloads: &[(String, Vec<u8>)],
    setup: &Setup,
    native: bool,
) -> Result<RunOutput, ChunkcError> {
    run_engine_with(wasm, preloads, setup, native, false)
}

/// [`run_engine`]; with `native` and `lazy`, every function is assembled at its first call.
pub fn run_engine_with(
    wasm: &[u8],
    preloads: &[(String, Vec<u8>)],
    setup: &Setup,
    native: bool,
    lazy: bool,
) -> Result<RunOutput, ChunkcError> {
    if native {
        #[cfg(target_arch = "x86_64")]
        return wasi::native::run_with(
            wasm,
            preloads,
            setup,
            &atoll_pae::Options {
                lazy,
                ..atoll_pae::Options::default()
            },
        );
        #[cfg(not(target_arch = "x86_64"))]
        return Err(ChunkcError::NotImplemented(
            "`--native` needs an x86-64 host",
        ));
    }
    wasi::reference::run(wasm, preloads, setup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_before_the_file_and_arguments_after_it() {
        let a = parse(&s(&[
            "--native",
            "--dir",
            ".",
            "--dir",
            "/tmp::data",
            "p.wasm",
            "x",
            "-v",
        ]))
        .unwrap();
        assert!(a.native);
        assert_eq!(
            a.dirs,
            vec![(".".into(), ".".into()), ("/tmp".into(), "data".into())]
        );
        assert_eq!(
            (a.file.as_str(), a.args.clone()),
            ("p.wasm", s(&["x", "-v"]))
        );
        let b = parse(&s(&[
            "p.wasm",
            "a",
            "--native",
            "--preload",
            "m=m.wat",
            "--",
            "--dir",
        ]))
        .unwrap();
        assert_eq!(b.args, s(&["a", "--dir"]));
        assert!(b.native);
        assert_eq!(b.preloads, vec![("m".into(), "m.wat".into())]);
        assert!(parse(&s(&["--dir"])).is_err());
        assert!(parse(&s(&["--preload", "nofile", "p.wasm"])).is_err());
        assert!(parse(&s(&["--bogus", "p.wasm"])).is_err());
        assert!(parse(&s(&["--native"])).is_err());
    }
}
