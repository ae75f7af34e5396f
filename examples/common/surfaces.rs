//! Contour plots of 2-D surfaces: iso-lines traced by marching squares on a grid of values,
//! with optimiser paths drawn over them (SVG).
//!
//! Used by `study_optimizers`; included with `#[path = "common/surfaces.rs"] mod surfaces;`
//! so that `common/mod.rs` stays shared and untouched.
#![allow(dead_code)]

use std::path::Path;

use anyhow::Result;
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

/// Draws the iso-lines of `grid` at `levels` (light for low, dark for high), the `paths`
/// over them (cut where they leave the plotted box) and `marks` (e.g. the minimum, as
/// black crosses), into one SVG.
pub fn contour_chart(
    path: &Path,
    title: &str,
    grid: &Grid,
    levels: &[f64],
    paths: &[Path2],
    marks: &[(f64, f64)],
) -> Result<()> {
    let root = SVGBackend::new(path, (760, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (x0, x1) = grid.x;
    let (y0, y1) = grid.y;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("y")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (k, &level) in levels.iter().enumerate() {
        let t = k as f64 / (levels.len().max(2) - 1) as f64;
        let shade = |lo: f64, hi: f64| (lo + t * (hi - lo)) as u8;
        let color = RGBColor(shade(190.0, 40.0), shade(205.0, 60.0), shade(225.0, 120.0));
        for line in grid.iso_lines(level) {
            chart.draw_series(std::iter::once(PathElement::new(
                line,
                color.stroke_width(1),
            )))?;
        }
    }
    let inside = |p: &(f64, f64)| {
        p.0.is_finite() && p.1.is_finite() && (x0..=x1).contains(&p.0) && (y0..=y1).contains(&p.1)
    };
    for (i, p) in paths.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        // Split the path where it leaves the box, so a diverging run is not drawn as a
        // line along the border.
        let mut pieces: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        // Points closer than about a pixel to the last one drawn add nothing but file size
        // (a converged run repeats its last point thousands of times).
        let (px, py) = ((x1 - x0) / 1500.0, (y1 - y0) / 1500.0);
        for q in &p.points {
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
        pieces.retain(|piece| !piece.is_empty());
        for (n, piece) in pieces.iter().enumerate() {
            let series = chart.draw_series(LineSeries::new(
                piece.iter().copied(),
                color.stroke_width(2),
            ))?;
            if n == 0 {
                series.label(p.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
        if let Some(&end) = p.points.iter().rev().find(|q| inside(q)) {
            chart.draw_series(std::iter::once(Circle::new(end, 4, color.filled())))?;
        }
    }
    for &m in marks {
        chart.draw_series(std::iter::once(Cross::new(m, 7, BLACK.stroke_width(2))))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
