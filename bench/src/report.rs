//! The measurements and their two renderings: aligned text tables and JSON.

use std::fmt::Write;

/// One engine compiling one module.
pub struct CompileFig {
    /// Timed compilations.
    pub iterations: u32,
    /// Mean seconds per compilation.
    pub secs: f64,
}

/// One chunk's module, compiled by every engine.
pub struct CompileRow {
    pub chunk: String,
    pub bytes: usize,
    /// Defined (not imported) functions.
    pub functions: usize,
    /// By engine, `None` on failure.
    pub figs: Vec<Option<CompileFig>>,
}

/// One engine running one workload.
pub struct ExecFig {
    /// Median seconds per call.
    pub secs: f64,
    /// Median time-stamp-counter cycles per call.
    pub cycles: f64,
    /// Calls per timed sample.
    pub calls: u64,
}

/// One workload, run by every engine.
pub struct ExecRow {
    pub workload: String,
    /// The result every engine agreed on (the first engine's if they did not).
    pub result: String,
    pub figs: Vec<Option<ExecFig>>,
}

/// Everything one run measured.
pub struct Report {
    pub cpu: String,
    pub cpus: usize,
    pub date: String,
    pub image: String,
    pub engines: Vec<String>,
    pub iterations: String,
    pub runs: usize,
    pub compile: Vec<CompileRow>,
    pub exec: Vec<ExecRow>,
    /// WASI programs, one whole run (instantiate + `_start`) per call.
    pub programs: Vec<ExecRow>,
    /// Large modules, compile only (`large.rs`).
    pub large: Vec<CompileRow>,
    pub errors: Vec<String>,
}

fn time(secs: f64) -> String {
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.1} µs", secs * 1e6)
    } else {
        format!("{:.0} ns", secs * 1e9)
    }
}

fn rate(per_sec: f64, unit: &str) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M{unit}/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k{unit}/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} {unit}/s")
    }
}

fn ratio(value: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}x", value / b),
        _ => "-".into(),
    }
}

/// Renders rows of cells as columns: first column left-aligned, the rest right-aligned.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

impl Report {
    /// Per engine: total bytes, total functions and seconds to compile every chunk once
    /// (`None` if any chunk failed).
    fn compile_totals(&self) -> Vec<Option<(f64, f64, f64)>> {
        (0..self.engines.len())
            .map(|e| {
                let mut total = (0.0, 0.0, 0.0);
                for row in &self.compile {
                    let fig = row.figs.get(e)?.as_ref()?;
                    total.0 += row.bytes as f64;
                    total.1 += row.functions as f64;
                    total.2 += fig.secs;
                }
                Some(total)
            })
            .collect()
    }

    /// One compile row's cells: module, bytes, functions, then per engine throughput and ratio.
    fn compile_cells(&self, row: &CompileRow) -> Vec<String> {
        let per: Vec<Option<f64>> = row
            .figs
            .iter()
            .map(|f| f.as_ref().map(|f| row.bytes as f64 / f.secs))
            .collect();
        let base = self.base_of(&per);
        let mut cells = vec![
            row.chunk.clone(),
            row.bytes.to_string(),
            row.functions.to_string(),
        ];
        cells.extend(per.iter().map(|p| match p {
            Some(v) => format!("{} {}", rate(*v, "B"), ratio(*v, base)),
            None => "failed".into(),
        }));
        cells
    }

    /// Geometric mean over large modules of engine throughput / atoll throughput (`None`
    /// without atoll or without a module both compiled).
    fn large_geomean(&self, e: usize) -> Option<f64> {
        let (mut log, mut n) = (0.0, 0);
        for row in &self.large {
            let (Some(Some(base)), Some(Some(fig))) = (row.figs.first(), row.figs.get(e)) else {
                continue;
            };
            log += (base.secs / fig.secs).ln();
            n += 1;
        }
        (n > 0 && self.atoll_first()).then(|| (log / f64::from(n)).exp())
    }

    fn large_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\nLarge modules, compile throughput, wasm bytes/s (validate + compile + map \
             executable, one thread;\nratio = engine / atoll, higher is faster)"
        );
        let mut rows = vec![{
            let mut h = vec!["module".to_string(), "bytes".into(), "funcs".into()];
            h.extend(self.engines.iter().cloned());
            h
        }];
        for row in &self.large {
            rows.push(self.compile_cells(row));
        }
        let mut cells = vec![
            "geometric mean of ratios".to_string(),
            String::new(),
            String::new(),
        ];
        cells.extend((0..self.engines.len()).map(|e| {
            self.large_geomean(e)
                .map_or("-".into(), |g| format!("{g:.2}x"))
        }));
        rows.push(cells);
        table(out, &rows);
    }

    /// Geometric mean over workloads of engine time / atoll time (`None` without atoll).
    fn exec_geomean(&self, rows: &[ExecRow], e: usize) -> Option<f64> {
        let (mut log, mut n) = (0.0, 0);
        for row in rows {
            let base = row.figs.first()?.as_ref()?.secs;
            if let Some(fig) = row.figs.get(e).and_then(Option::as_ref) {
                log += (fig.secs / base).ln();
                n += 1;
            }
        }
        (n > 0).then(|| (log / f64::from(n)).exp())
    }

    /// The figure ratios are taken against: atoll's (the first engine's) when atoll runs first.
    fn base_of(&self, per: &[Option<f64>]) -> Option<f64> {
        if self.atoll_first() {
            per.first().copied().flatten()
        } else {
            None
        }
    }

    fn atoll_first(&self) -> bool {
        self.engines.first().map(String::as_str) == Some("atoll")
    }

    fn exec_tables(&self, out: &mut String, rows: &[ExecRow], title: &str, cycles_title: &str) {
        let _ = writeln!(out, "\n{title}");
        let mut table_rows = vec![{
            let mut h = vec!["workload".to_string(), "result".into()];
            h.extend(self.engines.iter().cloned());
            h
        }];
        for row in rows {
            let per: Vec<Option<f64>> = row
                .figs
                .iter()
                .map(|f| f.as_ref().map(|f| f.secs))
                .collect();
            let base = self.base_of(&per);
            let mut cells = vec![row.workload.clone(), row.result.clone()];
            cells.extend(per.iter().map(|p| match p {
                Some(v) => format!("{} {}", time(*v), ratio(*v, base)),
                None => "failed".into(),
            }));
            table_rows.push(cells);
        }
        if self.atoll_first() {
            let mut cells = vec!["geometric mean of ratios".to_string(), String::new()];
            cells.extend((0..self.engines.len()).map(|e| {
                self.exec_geomean(rows, e)
                    .map_or("-".into(), |g| format!("{g:.2}x"))
            }));
            table_rows.push(cells);
        }
        table(out, &table_rows);

        let _ = writeln!(out, "\n{cycles_title}");
        let mut table_rows = vec![{
            let mut h = vec!["workload".to_string()];
            h.extend(self.engines.iter().cloned());
            h
        }];
        for row in rows {
            let mut cells = vec![row.workload.clone()];
            cells.extend(row.figs.iter().map(|f| match f {
                Some(f) if f.cycles >= 1e6 => format!("{:.2} Mcyc", f.cycles / 1e6),
                Some(f) => format!("{:.1} kcyc", f.cycles / 1e3),
                None => "failed".into(),
            }));
            table_rows.push(cells);
        }
        table(out, &table_rows);
    }

    /// The text rendering.
    pub fn to_tables(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "atoll-bench: {}", self.date);
        let _ = writeln!(out, "CPU: {} ({} logical CPUs)", self.cpu, self.cpus);
        let _ = writeln!(out, "image: {}", self.image);
        let _ = writeln!(out, "compile iterations: {}", self.iterations);
        let _ = writeln!(
            out,
            "execution: median of {} samples per workload after warm-up",
            self.runs
        );

        if !self.compile.is_empty() {
            let _ = writeln!(
                out,
                "\nCompile throughput, wasm bytes/s (validate + compile + map executable, one thread;\n\
             ratio = engine / atoll, higher is faster)"
            );
            let mut rows = vec![{
                let mut h = vec!["chunk".to_string(), "bytes".into(), "funcs".into()];
                h.extend(self.engines.iter().cloned());
                h
            }];
            for row in &self.compile {
                rows.push(self.compile_cells(row));
            }
            let totals = self.compile_totals();
            let total_bytes: usize = self.compile.iter().map(|r| r.bytes).sum();
            let total_funcs: usize = self.compile.iter().map(|r| r.functions).sum();
            for (label, pick, unit) in [
                ("all (bytes/s)", 0usize, "B"),
                ("all (functions/s)", 1, "fn"),
            ] {
                let per: Vec<Option<f64>> = totals
                    .iter()
                    .map(|t| t.map(|t| if pick == 0 { t.0 } else { t.1 } / t.2))
                    .collect();
                let base = self.base_of(&per);
                let mut cells = vec![
                    label.to_string(),
                    total_bytes.to_string(),
                    total_funcs.to_string(),
                ];
                cells.extend(per.iter().map(|p| match p {
                    Some(v) => format!("{} {}", rate(*v, unit), ratio(*v, base)),
                    None => "-".into(),
                }));
                rows.push(cells);
            }
            let mut cells = vec![
                "all (time, once each)".to_string(),
                String::new(),
                String::new(),
            ];
            cells.extend(totals.iter().map(|t| t.map_or("-".into(), |t| time(t.2))));
            rows.push(cells);
            table(&mut out, &rows);
        }

        if !self.large.is_empty() {
            self.large_table(&mut out);
        }
        if !self.exec.is_empty() {
            self.exec_tables(
                &mut out,
                &self.exec,
                "Execution time per call (median; ratio = engine / atoll, higher is slower)",
                "Execution, time-stamp-counter cycles per call (median)",
            );
        }
        if !self.programs.is_empty() {
            self.exec_tables(
                &mut out,
                &self.programs,
                "WASI programs, time per run: instantiate + _start to exit, code compiled once \
                 (median; ratio = engine / atoll)",
                "WASI programs, time-stamp-counter cycles per run (median)",
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\n{} error(s), listed on stderr", self.errors.len());
        }
        out
    }

    fn exec_json(&self, row: &ExecRow) -> String {
        let num = |v: f64| {
            if v.is_finite() {
                format!("{v:e}")
            } else {
                "null".into()
            }
        };
        let figs = self
            .engines
            .iter()
            .zip(&row.figs)
            .map(|(e, f)| match f {
                Some(f) => format!(
                    "{}:{{\"seconds\":{},\"cycles\":{},\"calls_per_sample\":{}}}",
                    quote(e),
                    num(f.secs),
                    num(f.cycles),
                    f.calls
                ),
                None => format!("{}:null", quote(e)),
            })
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "{{\"workload\":{},\"result\":{},\"engines\":{{{figs}}}}}",
            quote(&row.workload),
            quote(&row.result)
        )
    }

    /// The JSON rendering (raw figures, no ratios).
    pub fn to_json(&self) -> String {
        let list = |items: Vec<String>| format!("[{}]", items.join(","));
        let num = |v: f64| {
            if v.is_finite() {
                format!("{v:e}")
            } else {
                "null".into()
            }
        };
        let compile_json = |row: &CompileRow| {
            let figs = self
                    .engines
                    .iter()
                    .zip(&row.figs)
                    .map(|(e, f)| match f {
                        Some(f) => format!(
                            "{}:{{\"iterations\":{},\"seconds\":{},\"bytes_per_second\":{},\"functions_per_second\":{}}}",
                            quote(e),
                            f.iterations,
                            num(f.secs),
                            num(row.bytes as f64 / f.secs),
                            num(row.functions as f64 / f.secs)
                        ),
                        None => format!("{}:null", quote(e)),
                    })
                    .collect::<Vec<_>>()
                    .join(",");
            format!(
                "{{\"chunk\":{},\"bytes\":{},\"functions\":{},\"engines\":{{{figs}}}}}",
                quote(&row.chunk),
                row.bytes,
                row.functions
            )
        };
        let compile = self.compile.iter().map(compile_json).collect();
        let large = self.large.iter().map(compile_json).collect();
        let exec = self.exec.iter().map(|row| self.exec_json(row)).collect();
        let programs = self
            .programs
            .iter()
            .map(|row| self.exec_json(row))
            .collect();
        format!(
            "{{\"date\":{},\"cpu\":{},\"cpus\":{},\"image\":{},\"compile_iterations\":{},\"runs\":{},\"engines\":{},\"compile\":{},\"exec\":{},\"programs\":{},\"large\":{},\"errors\":{}}}",
            quote(&self.date),
            quote(&self.cpu),
            self.cpus,
            quote(&self.image),
            quote(&self.iterations),
            self.runs,
            list(self.engines.iter().map(|e| quote(e)).collect()),
            list(compile),
            list(exec),
            list(programs),
            list(large),
            list(self.errors.iter().map(|e| quote(e)).collect()),
        )
    }
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
