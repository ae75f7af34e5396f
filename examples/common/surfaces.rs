//! Contour plots of 2-D surfaces: iso-lines traced by marching squares on a grid of values,
//! with optimiser paths drawn over them (SVG).
//!
//! Used by `study_optimizers`; included with `#[path = "common/surfaces.rs"] mod surfaces;`
//! so that `common/mod.rs` stays shared and untouched.
#![allow(dead_code)]

use std::path::Path;

use anyhow::Result;
pub use plotters::prelude::SeriesLabelPosition;
use plotters::prelude::*;

/// Values of a function on a regular `nx × ny` grid over `x × y`; `z[j * nx + i]` is the
/// value at the `i`-th x and the `j`-th y.
pub struct Grid {
    /// x range (first and last grid column).
    pub x: (f64, f64),
    /// y range (first and last grid row).
    pub y: (f64, f64),
    /// Points along x.
    pub nx: usize,
    /// Points along y.
    pub ny: usize,
    /// Row-major values, y-major.
    pub z: Vec<f64>,
}

impl Grid {
    /// The coordinates of grid point `(i, j)`.
    pub fn point(&self, i: usize, j: usize) -> (f64, f64) {
        let fx = i as f64 / (self.nx - 1) as f64;
        let fy = j as f64 / (self.ny - 1) as f64;
        (
            self.x.0 + fx * (self.x.1 - self.x.0),
            self.y.0 + fy * (self.y.1 - self.y.0),
        )
    }

    /// All grid points in the order of `z`.
    pub fn points(&self) -> Vec<(f64, f64)> {
        (0..self.ny)
            .flat_map(|j| (0..self.nx).map(move |i| (i, j)))
            .map(|(i, j)| self.point(i, j))
            .collect()
    }

    fn z(&self, i: usize, j: usize) -> f64 {
        self.z[j * self.nx + i]
    }

    // Grid edges get one id each, so the crossing on an edge shared by two cells is the same
    // point in both and segments can be chained into polylines by id.
    fn horizontal(&self, i: usize, j: usize) -> usize {
        2 * (j * self.nx + i)
    }

    fn vertical(&self, i: usize, j: usize) -> usize {
        2 * (j * self.nx + i) + 1
    }

    /// Where the iso-line at `level` crosses edge `id` (linear interpolation).
    fn crossing(&self, id: usize, level: f64) -> (f64, f64) {
        let cell = id / 2;
        let (i, j) = (cell % self.nx, cell / self.nx);
        // Even ids are horizontal edges (see `horizontal`); `is_multiple_of` is newer than the MSRV.
        let (i2, j2) = if id & 1 == 0 { (i + 1, j) } else { (i, j + 1) };
        let (a, b) = (self.z(i, j), self.z(i2, j2));
        let t = ((level - a) / (b - a)).clamp(0.0, 1.0);
        let (p, q) = (self.point(i, j), self.point(i2, j2));
        (p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1))
    }

    /// The iso-lines `z = level` as polylines (marching squares; saddle cells are resolved
    /// by the value at the cell centre). Cells with a non-finite corner are skipped.
    pub fn iso_lines(&self, level: f64) -> Vec<Vec<(f64, f64)>> {
        const NONE: usize = usize::MAX;
        // Each crossed edge touches at most two segments, one in each neighbouring cell.
        let mut links = vec![[NONE; 2]; 2 * self.nx * self.ny];
        let mut link = |a: usize, b: usize| {
            for (from, to) in [(a, b), (b, a)] {
                let slot = &mut links[from];
                if slot[0] == NONE {
                    slot[0] = to;
                } else {
                    slot[1] = to;
                }
            }
        };
        for j in 0..self.ny - 1 {
            for i in 0..self.nx - 1 {
                let c = [
                    self.z(i, j),
                    self.z(i + 1, j),
                    self.z(i + 1, j + 1),
                    self.z(i, j + 1),
                ];
                if c.iter().any(|v| !v.is_finite()) {
                    continue;
                }
                let above = c.map(|v| v >= level);
                // Corners in order, and the edge between corner k and corner k+1.
                let edges = [
                    self.horizontal(i, j),
                    self.vertical(i + 1, j),
                    self.horizontal(i, j + 1),
                    self.vertical(i, j),
                ];
                let crossed: Vec<usize> = (0..4)
                    .filter(|&k| above[k] != above[(k + 1) % 4])
                    .map(|k| edges[k])
                    .collect();
                match crossed.len() {
                    2 => link(crossed[0], crossed[1]),
                    4 => {
                        // Cut off each corner that disagrees with the centre: its two edges
                        // are edges[k - 1] and edges[k].
                        let centre = c.iter().sum::<f64>() / 4.0 >= level;
                        for k in (0..4).filter(|&k| above[k] != centre) {
                            link(edges[(k + 3) % 4], edges[k]);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut seen = vec![false; links.len()];
        let mut lines = Vec::new();
        // Open lines start at an edge with one link (on the border or next to a skipped
        // cell); what remains afterwards are closed loops.
        let starts: Vec<usize> = (0..links.len())
            .filter(|&e| links[e][0] != NONE && links[e][1] == NONE)
            .chain((0..links.len()).filter(|&e| links[e][1] != NONE))
            .collect();
        for start in starts {
            if seen[start] {
                continue;
            }
            let (mut prev, mut cur) = (NONE, start);
            let mut line = Vec::new();
            loop {
                seen[cur] = true;
                line.push(self.crossing(cur, level));
                let next = if links[cur][0] != prev {
                    links[cur][0]
                } else {
                    links[cur][1]
                };
                if next == NONE || seen[next] {
                    if next == start {
                        line.push(line[0]);
                    }
                    break;
                }
                (prev, cur) = (cur, next);
            }
            lines.push(line);
        }
        lines
    }
}

/// One path over a contour plot.
pub struct Path2 {
    /// Legend label.
    pub name: String,
    /// Points visited, in order.
    pub points: Vec<(f64, f64)>,
}

/// A colour per path index that stays distinguishable for up to ten paths.
pub fn path_color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
        RGBColor(0, 0, 0),
    ];
    COLORS[i % COLORS.len()]
}

/// Draws the iso-lines of `grid` at `levels` (light for low, dark for high), one `path` over
/// them in `color` (cut where it leaves the plotted box; its start a hollow circle, its
/// end a filled one) and `marks` (e.g. the minimum, as black crosses) into `area`.
fn contour_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    grid: &Grid,
    levels: &[f64],
    path: &Path2,
    color: RGBColor,
    marks: &[(f64, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = grid.x;
    let (y0, y1) = grid.y;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(30)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_labels(5)
        .y_labels(5)
        .label_style(("sans-serif", 10))
        .draw()?;
    for (k, &level) in levels.iter().enumerate() {
        let t = k as f64 / (levels.len().max(2) - 1) as f64;
        let shade = |lo: f64, hi: f64| (lo + t * (hi - lo)) as u8;
        let c = RGBColor(shade(200.0, 60.0), shade(210.0, 80.0), shade(228.0, 140.0));
        for line in grid.iso_lines(level) {
            chart.draw_series(std::iter::once(PathElement::new(line, c.stroke_width(1))))?;
        }
    }
    let inside = |p: &(f64, f64)| {
        p.0.is_finite() && p.1.is_finite() && (x0..=x1).contains(&p.0) && (y0..=y1).contains(&p.1)
    };
    // Split the path where it leaves the box, so a diverging run is not drawn as a line
    // along the border; drop points within about a pixel of the last one drawn (a
    // converged run repeats its last point thousands of times).
    let mut pieces: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    let (px, py) = ((x1 - x0) / 600.0, (y1 - y0) / 600.0);
    for q in &path.points {
        if inside(q) {
            let piece = pieces.last_mut().expect("starts non-empty");
            let near = |r: &(f64, f64)| (q.0 - r.0).abs() < px && (q.1 - r.1).abs() < py;
            if !piece.last().is_some_and(near) {
                piece.push(*q);
            }
        } else if !pieces.last().expect("starts non-empty").is_empty() {
            pieces.push(Vec::new());
        }
    }
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        chart.draw_series(LineSeries::new(
            piece.iter().copied(),
            color.stroke_width(2),
        ))?;
    }
    if let Some(&start) = path.points.first().filter(|q| inside(q)) {
        chart.draw_series(std::iter::once(Circle::new(
            start,
            4,
            color.stroke_width(2),
        )))?;
    }
    if let Some(&end) = path.points.iter().rev().find(|q| inside(q)) {
        chart.draw_series(std::iter::once(Circle::new(end, 4, color.filled())))?;
    }
    for &m in marks {
        chart.draw_series(std::iter::once(Cross::new(m, 6, BLACK.stroke_width(2))))?;
    }
    Ok(())
}

/// One contour panel per path, `cols` to a row, so no path hides another: the iso-lines
/// of `grid` at `levels`, the path, and `marks`.
pub fn contour_grid(
    path: &Path,
    title: &str,
    grid: &Grid,
    levels: &[f64],
    paths: &[Path2],
    marks: &[(f64, f64)],
    cols: usize,
) -> Result<()> {
    let rows = paths.len().div_ceil(cols);
    let root =
        SVGBackend::new(path, (300 * cols as u32, 290 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(40);
    top.draw(&Text::new(
        title.to_string(),
        (12, 10),
        ("sans-serif", 20).into_font(),
    ))?;
    let panels = body.split_evenly((rows, cols));
    for (i, (p, area)) in paths.iter().zip(&panels).enumerate() {
        contour_panel(area, &p.name, grid, levels, p, path_color(i), marks)?;
    }
    root.present()?;
    Ok(())
}

/// Curves on log-log axes (non-positive or non-finite points are dropped; values above
/// `y_max` are drawn at `y_max`, along the top edge), each with its own colour and, every
/// few points, a marker of its own shape, so curves that overlap stay distinguishable.
pub fn log_log_chart(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    y_max: Option<f64>,
    legend: SeriesLabelPosition,
) -> Result<()> {
    let cap = |p: &(f64, f64)| (p.0, y_max.map_or(p.1, |m| p.1.min(m)));
    let series: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, v)| (n.clone(), v.iter().map(cap).collect()))
        .collect();
    let series = &series[..];
    let ok = |p: &&(f64, f64)| p.0 > 0.0 && p.1 > 0.0 && p.0.is_finite() && p.1.is_finite();
    let pts = || series.iter().flat_map(|(_, v)| v.iter().filter(ok));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, 0.0f64, f64::INFINITY, 0.0f64);
    for p in pts() {
        (x0, x1, y0, y1) = (x0.min(p.0), x1.max(p.0), y0.min(p.1), y1.max(p.1));
    }
    anyhow::ensure!(x1 > 0.0 && y1 > 0.0, "{title}: nothing positive to plot");
    let root = SVGBackend::new(path, (820, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1 * 1.5).log_scale(), (y0 / 2.0..y1 * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = path_color(i);
        // Points closer than about a pixel (in log space) to the last one kept add nothing
        // but file size: runs of 10⁴ steps have long flat stretches.
        let (lx, ly) = (
            (x1 * 1.5 / x0).log10() / 700.0,
            (y1 * 4.0 / y0).log10() / 450.0,
        );
        let mut kept: Vec<(f64, f64)> = Vec::new();
        for &p in points.iter().filter(ok) {
            let far =
                |q: &(f64, f64)| (p.0 / q.0).log10().abs() > lx || (p.1 / q.1).log10().abs() > ly;
            if kept.last().is_none_or(far) {
                kept.push(p);
            }
        }
        if let (Some(&last), Some(&end)) = (kept.last(), points.iter().rfind(ok)) {
            if last != end {
                kept.push(end);
            }
        }
        chart
            .draw_series(LineSeries::new(kept.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        // markers at log-spaced x, offset per series so they do not sit on each other
        let mut next = x0 * 1.5f64.powf(i as f64 / series.len() as f64);
        for &(x, y) in &kept {
            if x < next {
                continue;
            }
            next = x * 2.5;
            match i % 3 {
                0 => chart.draw_series(std::iter::once(Circle::new((x, y), 4, color.filled())))?,
                1 => chart.draw_series(std::iter::once(TriangleMarker::new(
                    (x, y),
                    5,
                    color.filled(),
                )))?,
                _ => chart.draw_series(std::iter::once(Cross::new(
                    (x, y),
                    4,
                    color.stroke_width(2),
                )))?,
            };
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend)
        .draw()?;
    root.present()?;
    Ok(())
}
