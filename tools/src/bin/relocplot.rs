//! `relocplot CAPTURE OUT.svg`: draws what the predictive relocation engine did in a run (see
//! `tools::relocplot`). CAPTURE is console output holding `engine-log --json` (and, for
//! guest-time units, a `phased --json` report), e.g. what `./run-qemu.sh` printed.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [capture, out] = args.as_slice() else {
        eprintln!("usage: relocplot CAPTURE OUT.svg");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(capture) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {capture}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match tools::relocplot::plot(&text, std::path::Path::new(out)) {
        Ok(n) => {
            println!("{out}: {n} decisions");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
