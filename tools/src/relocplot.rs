//! `relocplot`: turns what the predictive relocation engine printed in a run (the JSON lines of
//! `engine-log --json`, and optionally `islands --json` and `autoreloc status --json`, captured
//! from the console) into one SVG with three panels:
//!
//! 1. island placement over time: each decision at its guest time (ms since the first), one
//!    row per island, coloured by the core it went to (grey: a page-size move), a filled
//!    circle for a move into the 2 MiB page or a core move of an island in it, an open one
//!    for 4 KiB pages; the circle's size is the island's measured calls per second after it
//!    (its heat);
//! 2. the distribution of the moves' stop-the-world pauses (TSC cycles; guest instructions
//!    under `--icount`);
//! 3. predicted against measured benefit, with the line where they are equal.

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde_json::Value;

/// One decision, as plotted.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Guest TSC when it was made.
    pub tsc: u64,
    /// Island id.
    pub island: u64,
    /// What the island is.
    pub label: String,
    /// Target (`core N`, `large`, `small`, `node N`).
    pub to: String,
    /// It lives in the 2 MiB page after the move.
    pub large_page: bool,
    /// Predicted benefit, thousandths.
    pub predicted_milli: i64,
    /// Measured benefit, thousandths, once measured.
    pub measured_milli: Option<i64>,
    /// Calls per second after the move, once measured.
    pub after_calls_per_second: Option<u64>,
    /// Pause of the move, TSC cycles (0 if it failed).
    pub pause_cycles: u64,
    /// The move failed.
    pub failed: bool,
}

/// Why a capture could not be plotted.
#[derive(Debug)]
pub enum PlotError {
    /// No `engine-log --json` line in it.
    NoLog,
    /// The log has no decision.
    Empty,
    /// Drawing failed.
    Draw(String),
}

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoLog => f.write_str("no `engine-log --json` output in the capture"),
            Self::Empty => f.write_str("the engine log has no decision"),
            Self::Draw(e) => write!(f, "drawing: {e}"),
        }
    }
}

/// The JSON objects of a capture (lines starting with `{`, other lines skipped).
fn objects(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("atoll> ").trim();
            l.starts_with('{')
                .then(|| serde_json::from_str(l).ok())
                .flatten()
        })
        .collect()
}

/// The decisions of the last `engine-log --json` in `text`.
pub fn decisions(text: &str) -> Result<Vec<Decision>, PlotError> {
    let log = objects(text)
        .into_iter()
        .rev()
        .find(|o| o.get("entries").is_some())
        .ok_or(PlotError::NoLog)?;
    let mut large: BTreeMap<u64, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for e in log["entries"].as_array().into_iter().flatten() {
        let island = e["island"].as_u64().unwrap_or(0);
        let to = e["to"].as_str().unwrap_or("").to_string();
        let failed = e["fate"] == "failed";
        let was_large = e["from"].as_str().unwrap_or("").ends_with("2M");
        let now_large = match to.as_str() {
            _ if failed => *large.get(&island).unwrap_or(&was_large),
            "large" => true,
            "small" => false,
            _ => *large.get(&island).unwrap_or(&was_large),
        };
        large.insert(island, now_large);
        out.push(Decision {
            tsc: e["tsc"].as_u64().unwrap_or(0),
            island,
            label: e["label"].as_str().unwrap_or("").to_string(),
            to,
            large_page: now_large,
            predicted_milli: e["predicted_milli"].as_i64().unwrap_or(0),
            measured_milli: e["measured_milli"].as_i64(),
            after_calls_per_second: e["after_calls_per_second"].as_u64(),
            pause_cycles: e["pause_cycles"].as_u64().unwrap_or(0),
            failed,
        });
    }
    if out.is_empty() {
        return Err(PlotError::Empty);
    }
    Ok(out)
}

/// TSC ticks per millisecond, from the capture.s
/// `phased --json` elapsed cycles and microseconds when present, else 1 GHz (`--icount`).
fn ticks_per_ms(text: &str) -> f64 {
    for o in objects(text) {
        for key in ["run", "on", "off"] {
            let r = &o[key];
            if let (Some(c), Some(l), Some(us)) = (
                r["median_latency_cycles"].as_u64(),
                r["elapsed_cycles"].as_u64(),
                r["median_latency_us"].as_u64(),
            ) && us > 0
                && l > 0
            {
                return c as f64 / us as f64 * 1000.0;
            }
        }
    }
    1.0e6
}

fn core_colour(to: &str) -> RGBColor {
    const PALETTE: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
    ];
    match to
        .strip_prefix("core ")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => PALETTE[n % PALETTE.len()],
        None => RGBColor(128, 128, 128),
    }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Draws the capture `text` as an SVG at `out`.
pub fn plot(text: &str, out: &std::path::Path) -> Result<usize, PlotError> {
    let ds = decisions(text)?;
    let per_ms = ticks_per_ms(text);
    let t0 = ds.iter().map(|d| d.tsc).min().unwrap_or(0);
    let t = |d: &Decision| (d.tsc - t0) as f64 / per_ms;
    let t_max = ds.iter().map(t).fold(1.0, f64::max) * 1.05;
    let mut rows: Vec<(u64, String)> = ds.iter().map(|d| (d.island, d.label.clone())).collect();
    rows.sort();
    rows.dedup_by_key(|r| r.0);
    let row_of = |id: u64| rows.iter().position(|r| r.0 == id).unwrap_or(0) as f64;
    let max_cps = ds
        .iter()
        .filter_map(|d| d.after_calls_per_second)
        .max()
        .unwrap_or(1)
        .max(1) as f64;

    let root = SVGBackend::new(out, (1100, 1250)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (top, rest) = root.split_vertically(450);
    let (mid, bottom) = rest.split_vertically(380);

    let mut chart = ChartBuilder::on(&top)
        .caption(
            "island placement over time (colour: target core; filled: 2 MiB page; size: calls/s after)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(230)
        .build_cartesian_2d(0.0..t_max, -0.5..(rows.len() as f64 - 0.5))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("guest time since the first decision (ms)")
        .y_labels(rows.len())
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            rows.get(i as usize)
                .map(|(id, l)| format!("{id} {l}"))
                .unwrap_or_default()
        })
        .draw()
        .map_err(draw_err)?;
    for d in ds.iter().filter(|d| !d.failed) {
        let colour = core_colour(&d.to);
        let size = 3.0 + 9.0 * d.after_calls_per_second.unwrap_or(0) as f64 / max_cps;
        let style = if d.large_page {
            colour.filled()
        } else {
            colour.stroke_width(2)
        };
        chart
            .draw_series(std::iter::once(Circle::new(
                (t(d), row_of(d.island)),
                size as i32,
                style,
            )))
            .map_err(draw_err)?;
    }

    let pauses: Vec<u64> = ds
        .iter()
        .filter(|d| !d.failed && d.pause_cycles > 0)
        .map(|d| d.pause_cycles)
        .collect();
    let p_max = pauses.iter().copied().max().unwrap_or(1).max(1);
    let bucket = (p_max / 20).max(1);
    let mut counts = [0u32; 21];
    for p in &pauses {
        counts[(*p / bucket) as usize] += 1;
    }
    let c_max = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(&mid)
        .caption(
            format!(
                "stop-the-world pause of the engine's moves ({} moves)",
                pauses.len()
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u64..(bucket * 21), 0u32..(c_max + 1))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("pause (TSC cycles; guest instructions under --icount)")
        .y_desc("moves")
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &n)| {
            let x0 = i as u64 * bucket;
            Rectangle::new([(x0, 0), (x0 + bucket, n)], RGBColor(31, 119, 180).filled())
        }))
        .map_err(draw_err)?;

    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            "predicted against measured benefit (thousandths; line: equal)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-1000i64..1000i64, -1000i64..1000i64)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("predicted")
        .y_desc("measured")
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(LineSeries::new(
            [(-1000, -1000), (1000, 1000)],
            RGBColor(160, 160, 160),
        ))
        .map_err(draw_err)?;
    let n = ds
        .iter()
        .filter(|d| d.measured_milli.is_some())
        .count()
        .max(1);
    chart
        .draw_series(
            ds.iter()
                .enumerate()
                .filter_map(|(i, d)| Some((i, d.predicted_milli, d.measured_milli?)))
                .map(|(i, p, m)| {
                    // Early decisions light, late ones dark: the model learns as it goes.
                    let shade = 200 - (160 * i / n).min(160) as u8;
                    Circle::new(
                        (p.clamp(-1000, 1000), m),
                        4,
                        RGBColor(shade, shade, 255).filled(),
                    )
                }),
        )
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(ds.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE: &str = r#"atoll> engine-log --json
{"entries":[{"seq":1,"window":3,"tsc":1000000,"island":5,"label":"json.json_generate_and_count","from":"running on core 1 4K","to":"core 2","predicted_milli":999,"reason":"x","kind":"predicted","active_before":true,"pause_cycles":8000,"phase":0,"fate":"measured","measured_milli":-400,"baseline":"window_before","baseline_calls_per_second":400,"after_calls_per_second":240},{"seq":2,"window":4,"tsc":3000000,"island":5,"label":"json.json_generate_and_count","from":"core 2 4K","to":"large","predicted_milli":10,"reason":"y","kind":"explore","active_before":true,"pause_cycles":9000,"phase":0,"fate":"pending","measured_milli":null},{"seq":3,"window":5,"tsc":4000000,"island":10,"label":"crc32.crc32_bench","from":"core 1 4K","to":"core 2","predicted_milli":5,"reason":"z","kind":"explore","active_before":true,"pause_cycles":0,"phase":1,"fate":"failed","measured_milli":null,"error":"e"}]}
atoll> "#;

    #[test]
    fn decisions_follow_the_log() {
        let ds = decisions(CAPTURE).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds[0].measured_milli, Some(-400));
        assert!(!ds[0].large_page);
        assert!(ds[1].large_page, "moved into the 2 MiB page");
        assert!(ds[2].failed);
        assert!(matches!(decisions("nothing"), Err(PlotError::NoLog)));
        assert!(matches!(
            decisions("{\"entries\":[]}"),
            Err(PlotError::Empty)
        ));
    }

    #[test]
    fn plots_an_svg() {
        let dir = std::env::temp_dir().join(format!("relocplot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("plot.svg");
        assert_eq!(plot(CAPTURE, &out).unwrap(), 3);
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("island placement over time"));
        assert!(svg.contains("<circle"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
