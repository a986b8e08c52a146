//! `chunkc run IMAGE CHUNK [--native [--lazy]] [--stdin PATH] [--env KEY=VALUE]... [ARGS...]`:
//! runs a command chunk (a WASI program exporting `_start`) of an image the way the kernel's
//! `run` does: `argv[0]` is the chunk name, the arguments default to the image's, the
//! environment is the image's default with each `--env` on top, the program's files are
//! preopened read-only as `.`, and standard input is empty or one of those files.

use std::sync::Arc;

use chunk_image::Image;

use super::ChunkcError;
use super::exec::run_engine_with;
use crate::wasi::{self, Input, Output, RunOutput, Setup};

/// A command run request.
#[derive(Debug, Clone, Default)]
pub struct CommandRun {
    /// The chunk.
    pub chunk: String,
    /// Arguments after `argv[0]`; `None` for the image's defaults.
    pub args: Option<Vec<String>>,
    /// A path in the program's files to read as standard input.
    pub stdin: Option<String>,
    /// Run atoll's code generator instead of wasmi.
    pub native: bool,
    /// With `native`: assemble every function at its first call.
    pub lazy: bool,
    /// `KEY=VALUE` settings on top of the image's default environment.
    pub env: Vec<String>,
}

/// Parses `CHUNK [--native] [--stdin PATH] [--env KEY=VALUE]... [--] [ARGS...]` (after `--`
/// or the first other word, every word is the program's).
pub fn parse(args: &[String]) -> Result<CommandRun, ChunkcError> {
    let [chunk, rest @ ..] = args else {
        return Err(ChunkcError::Usage("run needs IMAGE CHUNK [ARGS...]".into()));
    };
    let mut run = CommandRun {
        chunk: chunk.clone(),
        ..CommandRun::default()
    };
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        match a.as_str() {
            "--native" => run.native = true,
            "--lazy" => run.lazy = true,
            "--" => {
                i += 1;
                break;
            }
            "--env" => {
                i += 1;
                run.env.push(
                    rest.get(i)
                        .filter(|kv| atoll_wasi::env::valid_var(kv))
                        .ok_or_else(|| ChunkcError::Usage("--env needs KEY=VALUE".into()))?
                        .clone(),
                );
            }
            "--stdin" => {
                i += 1;
                run.stdin = Some(
                    rest.get(i)
                        .ok_or_else(|| ChunkcError::Usage("--stdin needs a PATH".into()))?
                        .clone(),
                );
            }
            _ => break,
        }
        i += 1;
    }
    if i < rest.len() {
        run.args = Some(rest[i..].to_vec());
    }
    Ok(run)
}

/// The setup the kernel would give `run.chunk` of `image`, with captured output.
pub fn setup(image: &Image<'_>, run: &CommandRun) -> Result<Setup, ChunkcError> {
    let chunk = image
        .chunk(&run.chunk)
        .ok_or_else(|| ChunkcError::Run(format!("no chunk `{}` in the image", run.chunk)))?;
    if !chunk.manifest.exports.iter().any(|e| e.name == "_start") {
        return Err(ChunkcError::Run(format!(
            "chunk `{}` is not a command (it exports no `_start`)",
            run.chunk
        )));
    }
    let program = image.program(&run.chunk);
    let mut argv = vec![run.chunk.clone()];
    match &run.args {
        Some(a) => argv.extend(a.iter().cloned()),
        None => argv.extend(
            program
                .iter()
                .flat_map(|p| p.args.iter().map(|a| (*a).to_string())),
        ),
    }
    let files = program.map(|p| p.files.clone()).unwrap_or_default();
    let tree = wasi::tree_of(files.iter().copied())?;
    let stdin = match &run.stdin {
        None => Arc::from(&[][..]),
        Some(path) => {
            let data = files.iter().find(|(p, _)| p == path).ok_or_else(|| {
                ChunkcError::Run(format!("no file `{path}` in `{}`'s files", run.chunk))
            })?;
            Arc::from(data.1)
        }
    };
    let env = atoll_wasi::env::merge(
        program.iter().flat_map(|p| p.env.iter().copied()),
        run.env.iter().map(String::as_str),
    )
    .map_err(|e| ChunkcError::Run(format!("environment: {e}")))?;
    Ok(Setup {
        args: argv,
        env,
        preopens: vec![(".".into(), Arc::new(tree))],
        stdin: Input::Bytes(stdin),
        output: Output::Capture,
    })
}

/// Runs a command chunk with captured output.
pub fn run(image_bytes: &[u8], run: &CommandRun) -> Result<RunOutput, ChunkcError> {
    let image = Image::parse(image_bytes)?;
    let setup = setup(&image, run)?;
    let module = image
        .chunk(&run.chunk)
        .map(|c| c.module)
        .ok_or_else(|| ChunkcError::Run(format!("no chunk `{}`", run.chunk)))?;
    run_engine_with(module, &[], &setup, run.native, run.lazy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_then_program_arguments() {
        let r = parse(&s(&[
            "lzc", "--native", "--stdin", "a.txt", "--env", "A=1", "-", "--native",
        ]))
        .unwrap();
        assert_eq!(r.env, s(&["A=1"]));
        assert!(parse(&s(&["lzc", "--env", "NOVALUE"])).is_err());
        let e = parse(&s(&["dirstat", "--", "--env"])).unwrap();
        assert_eq!(e.args, Some(s(&["--env"])));
        assert_eq!(r.chunk, "lzc");
        assert!(r.native);
        assert_eq!(r.stdin.as_deref(), Some("a.txt"));
        // Once the program's arguments start, every word is the program's.
        assert_eq!(r.args, Some(s(&["-", "--native"])));
        let d = parse(&s(&["dirstat"])).unwrap();
        assert_eq!((d.args, d.stdin, d.native), (None, None, false));
        assert!(parse(&s(&["lzc", "--stdin"])).is_err());
        assert!(parse(&[]).is_err());
    }
}
