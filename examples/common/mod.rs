//! Helpers shared by the study examples: SVG line charts and table printing.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::prelude::*;

/// One named curve.
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a label and points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// The folder studies write figures into (created if missing).
pub fn out_dir(dir: &str) -> Result<PathBuf> {
    let p = PathBuf::from(dir);
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

fn range(series: &[Series], f: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let vals = series
        .iter()
        .flat_map(|s| s.points.iter().map(&f))
        .filter(|v| v.is_finite());
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if lo >= hi {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

/// Draws curves into one SVG chart. `log_y` plots log10 of positive y values.
pub fn line_chart(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> Result<()> {
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1) = range(series, |p| p.0);
    let (y0, y1) = y_range.unwrap_or_else(|| range(series, |p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .map(|(x, y)| (x, y.clamp(y0, y1)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Prints a table with a header row and right-aligned columns.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:>width$}", c, width = w[i]))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(header.iter().map(|s| s.to_string()).collect());
    println!(
        "|{}|",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        line(r.clone());
    }
}

/// One small histogram of a grid figure.
pub struct HistPanel {
    /// Panel caption.
    pub title: String,
    /// The samples to bin.
    pub values: Vec<f64>,
}

/// Draws one histogram per panel in a `rows × cols` grid, all binned over the same
/// `x_range` into `bins` bins (samples outside it are dropped), so that panels compare
/// by eye; each panel's y axis is the fraction of its own samples, scaled to its
/// tallest bin.
pub fn histogram_grid(
    path: &Path,
    title: &str,
    panels: &[HistPanel],
    (rows, cols): (usize, usize),
    x_range: (f64, f64),
    bins: usize,
) -> Result<()> {
    let root =
        SVGBackend::new(path, (260 * cols as u32, 200 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (x0, x1) = x_range;
    let width = (x1 - x0) / bins as f64;
    for (area, panel) in root.split_evenly((rows, cols)).iter().zip(panels) {
        let mut counts = vec![0usize; bins];
        for &v in &panel.values {
            if v.is_finite() && v >= x0 && v <= x1 {
                counts[(((v - x0) / width) as usize).min(bins - 1)] += 1;
            }
        }
        let n = panel.values.len().max(1) as f64;
        let frac: Vec<f64> = counts.iter().map(|&c| c as f64 / n).collect();
        let top = frac.iter().cloned().fold(0.0, f64::max).max(1e-12) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 13))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(40)
            .build_cartesian_2d(x0..x1, 0.0..top)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(5)
            .y_labels(4)
            .label_style(("sans-serif", 10))
            .draw()?;
        chart.draw_series(frac.iter().enumerate().map(|(i, &f)| {
            let a = x0 + i as f64 * width;
            Rectangle::new([(a, 0.0), (a + width, f)], BLUE.mix(0.6).filled())
        }))?;
    }
    root.present()?;
    Ok(())
}
