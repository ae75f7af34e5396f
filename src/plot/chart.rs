//! Line charts, histogram grids and small multiples, drawn with `plotters` into SVG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{write_svg, DrawError, PlotError};

/// One named curve.
#[derive(Clone, Debug, PartialEq)]
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

/// One small histogram of a grid figure.
#[derive(Clone, Debug, PartialEq)]
pub struct HistPanel {
    /// Panel caption.
    pub title: String,
    /// The samples to bin.
    pub values: Vec<f64>,
}

/// One panel of a [`small_multiples`] figure: a caption and its curves.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// Panel caption.
    pub title: String,
    /// The curves drawn in it.
    pub series: Vec<Series>,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws into an SVG string of `size` pixels.
fn render(
    figure: &str,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Result<(), DrawError>,
) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root)
            .and_then(|_| root.present())
            .map_err(|source| PlotError::Draw {
                figure: figure.to_string(),
                source,
            })?;
    }
    Ok(svg)
}

/// The padded range of the finite coordinates picked by `f`.
fn range<'a>(
    points: impl Iterator<Item = &'a (f64, f64)>,
    f: impl Fn(&(f64, f64)) -> f64,
) -> (f64, f64) {
    let (lo, hi) = points
        .map(f)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if !lo.is_finite() {
        (0.0, 1.0) // nothing finite to show
    } else if lo >= hi {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

fn all_points(series: &[Series]) -> impl Iterator<Item = &(f64, f64)> {
    series.iter().flat_map(|s| s.points.iter())
}

/// Draws `series` on one set of axes (non-finite y values are skipped, the rest clamped to
/// `y_range` when it is given).
fn draw_lines(
    area: &Area<'_>,
    caption: (&str, u32),
    labels: Option<(&str, &str)>,
    series: &[Series],
    x: (f64, f64),
    y: (f64, f64),
    legend: bool,
) -> Result<(), DrawError> {
    let small = caption.1 < 16;
    let mut chart = ChartBuilder::on(area)
        .caption(caption.0, ("sans-serif", caption.1))
        .margin(if small { 6 } else { 12 })
        .x_label_area_size(if small { 22 } else { 36 })
        .y_label_area_size(if small { 44 } else { 56 })
        .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE.mix(0.0));
    if let Some((xl, yl)) = labels {
        mesh.x_desc(xl).y_desc(yl);
    }
    if small {
        mesh.x_labels(4).y_labels(4).label_style(("sans-serif", 10));
    }
    mesh.draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|(px, py)| (px, py.clamp(y.0, y.1)))
            .collect();
        let drawn = chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?;
        if legend {
            drawn.label(s.name.clone()).legend(move |(lx, ly)| {
                PathElement::new(vec![(lx, ly), (lx + 18, ly)], color.stroke_width(2))
            });
        }
    }
    if legend && !series.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

/// Curves on one chart, as an SVG string (720×480). `y_range` fixes the y axis (values
/// outside are clamped); by default it fits the data.
///
/// # Errors
/// [`PlotError::Draw`] if the backend fails.
pub fn line_chart_svg(
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> Result<String, PlotError> {
    let x = range(all_points(series), |p| p.0);
    let y = y_range.unwrap_or_else(|| range(all_points(series), |p| p.1));
    render(title, (720, 480), |root| {
        root.fill(&WHITE)?;
        draw_lines(
            root,
            (title, 20),
            Some((x_label, y_label)),
            series,
            x,
            y,
            true,
        )
    })
}

/// [`line_chart_svg`] written to `path`.
///
/// # Errors
/// [`PlotError::Draw`]; [`PlotError::Io`] when the file cannot be written.
pub fn line_chart(
    path: &Path,
    title: &str,
    labels: (&str, &str),
    series: &[Series],
    y_range: Option<(f64, f64)>,
) -> Result<(), PlotError> {
    write_svg(path, &line_chart_svg(title, labels, series, y_range)?)
}

/// One small line chart per panel in a grid of `cols` columns, every panel on the same x
/// and y ranges (`y_range`, or the range of all panels' data) so that they compare by eye:
/// Tufte's small multiples. Each panel is `panel` pixels; legends are left out, so give
/// every panel the same series in the same order (colours follow the order) and say what
/// they are in the title.
///
/// # Errors
/// [`PlotError::Invalid`] for zero columns; [`PlotError::Draw`] if the backend fails.
pub fn small_multiples_svg(
    title: &str,
    panels: &[Panel],
    cols: usize,
    panel: (u32, u32),
    y_range: Option<(f64, f64)>,
) -> Result<String, PlotError> {
    if cols == 0 {
        return Err(PlotError::Invalid {
            figure: title.to_string(),
            reason: "a grid needs at least one column",
        });
    }
    let rows = panels.len().div_ceil(cols).max(1);
    let cols = cols.min(panels.len()).max(1);
    let every = || panels.iter().flat_map(|p| all_points(&p.series));
    let x = range(every(), |p| p.0);
    let y = y_range.unwrap_or_else(|| range(every(), |p| p.1));
    let size = (panel.0 * cols as u32, panel.1 * rows as u32 + 40);
    render(title, size, |root| {
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        for (area, p) in root.split_evenly((rows, cols)).iter().zip(panels) {
            draw_lines(area, (&p.title, 13), None, &p.series, x, y, false)?;
        }
        Ok(())
    })
}

/// [`small_multiples_svg`] written to `path`.
///
/// # Errors
/// As [`small_multiples_svg`]; [`PlotError::Io`] when the file cannot be written.
pub fn small_multiples(
    path: &Path,
    title: &str,
    panels: &[Panel],
    cols: usize,
    panel: (u32, u32),
    y_range: Option<(f64, f64)>,
) -> Result<(), PlotError> {
    write_svg(
        path,
        &small_multiples_svg(title, panels, cols, panel, y_range)?,
    )
}

/// One histogram per panel in a `rows × cols` grid, all binned over the same `x_range` into
/// `bins` bins (samples outside it are dropped), so that panels compare by eye; each
/// panel's y axis is the fraction of its own samples, scaled to its tallest bin. As an
/// SVG string.
///
/// # Errors
/// [`PlotError::Invalid`] for zero bins or an empty or reversed range;
/// [`PlotError::Draw`] if the backend fails.
pub fn histogram_grid_svg(
    title: &str,
    panels: &[HistPanel],
    (rows, cols): (usize, usize),
    x_range: (f64, f64),
    bins: usize,
) -> Result<String, PlotError> {
    let (x0, x1) = x_range;
    // `partial_cmp` also rejects NaN bounds
    let ordered = x0.partial_cmp(&x1) == Some(std::cmp::Ordering::Less);
    if bins == 0 || !ordered || rows == 0 || cols == 0 {
        return Err(PlotError::Invalid {
            figure: title.to_string(),
            reason: "needs bins > 0, a non-empty x range and a grid of at least 1×1",
        });
    }
    let width = (x1 - x0) / bins as f64;
    let size = (260 * cols as u32, 200 * rows as u32 + 40);
    render(title, size, |root| {
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
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
        Ok(())
    })
}

/// [`histogram_grid_svg`] written to `path`.
///
/// # Errors
/// As [`histogram_grid_svg`]; [`PlotError::Io`] when the file cannot be written.
pub fn histogram_grid(
    path: &Path,
    title: &str,
    panels: &[HistPanel],
    grid: (usize, usize),
    x_range: (f64, f64),
    bins: usize,
) -> Result<(), PlotError> {
    write_svg(
        path,
        &histogram_grid_svg(title, panels, grid, x_range, bins)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_titles_escaped_and_every_series() {
        let s = [
            Series::new("train <a&b>", vec![(0.0, 1.0), (1.0, 0.5), (2.0, f64::NAN)]),
            Series::new("held out", vec![(0.0, 1.2), (2.0, 0.7)]),
        ];
        let svg = line_chart_svg("loss & accuracy", ("epoch", "loss"), &s, None).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("loss &amp; accuracy"));
        assert!(svg.contains("train &lt;a&amp;b&gt;") && svg.contains("held out"));
        // each series: its curve and its legend swatch, both 2 px wide
        assert_eq!(svg.matches(r#"stroke-width="2""#).count(), 4);
    }

    #[test]
    fn empty_and_degenerate_inputs_still_draw() {
        assert!(line_chart_svg("empty", ("x", "y"), &[], None).is_ok());
        let flat = [Series::new("c", vec![(1.0, 3.0)])];
        assert!(line_chart_svg("one point", ("x", "y"), &flat, None).is_ok());
        let panels = vec![
            Panel {
                title: "a".into(),
                series: flat.to_vec(),
            },
            Panel {
                title: "b".into(),
                series: vec![],
            },
            Panel {
                title: "c".into(),
                series: flat.to_vec(),
            },
        ];
        let svg = small_multiples_svg("grid", &panels, 2, (200, 150), None).unwrap();
        // two panels with a curve, no legends
        assert_eq!(svg.matches(r#"stroke-width="2""#).count(), 2);
        let e = small_multiples_svg("grid", &panels, 0, (200, 150), None).unwrap_err();
        assert!(matches!(e, PlotError::Invalid { .. }), "{e}");
        let e = histogram_grid_svg("h", &[], (1, 1), (1.0, 1.0), 10).unwrap_err();
        assert!(matches!(e, PlotError::Invalid { .. }), "{e}");
    }

    #[test]
    fn files_hold_the_same_svg_as_the_strings() {
        let dir = std::env::temp_dir().join(format!("gradlab-plot-{}", std::process::id()));
        let dir = super::super::out_dir(&dir).unwrap();
        let s = [Series::new(
            "x²",
            (0..10).map(|i| (i as f64, (i * i) as f64)).collect(),
        )];
        let p = dir.join("c.svg");
        line_chart(&p, "squares", ("x", "y"), &s, None).unwrap();
        let svg = line_chart_svg("squares", ("x", "y"), &s, None).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), svg);
        let panels = [HistPanel {
            title: "n".into(),
            values: vec![0.1, 0.2, 0.25, 0.9],
        }];
        let p = dir.join("h.svg");
        histogram_grid(&p, "hist", &panels, (1, 1), (0.0, 1.0), 4).unwrap();
        // 4 bins: one rectangle per bin, plus the background
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.matches("<rect").count() >= 4);
        std::fs::remove_dir_all(&dir).ok();
    }
}
