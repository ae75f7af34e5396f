//! Rendering a [`Report`] as one self-contained HTML file.

use std::fmt::Write;
use std::path::Path;

use super::{LayerStats, Report};
use crate::plot::{
    confusion_matrix_svg, escape, line_chart_svg, small_multiples_svg, Panel, PlotError, Series,
};

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; color: #222;
       max-width: 1180px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
nav a { margin-right: 1em; color: #2166ac; text-decoration: none; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 9em; }
.card .v { font-size: 1.6em; font-weight: 600; } .card .k { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 0.6em 0; } figcaption { color: #666; font-size: 0.85em; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.figs figure.chart { flex: 1 1 460px; max-width: 580px; }
.figs figure.chart svg { width: 100%; }
svg { max-width: 100%; height: auto; }
td.path { font-family: ui-monospace, 'SF Mono', Menlo, Consolas, monospace; white-space: pre; }
footer { margin-top: 3em; color: #888; font-size: 0.8em; }
";

/// `plotters` declares the SVG namespace by URL; inline SVG in HTML needs no declaration,
/// and leaving it out keeps the file free of any URL at all.
fn inline(svg: &str) -> String {
    svg.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1)
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        format!("{v}")
    } else if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(
        || "<td class=\"n\">–</td>".into(),
        |v| format!("<td class=\"n\">{}</td>", fmt_num(v)),
    )
}

/// The headline numbers: the last value of every loss curve, the last and best of every
/// accuracy curve, and the confusion matrix's accuracy.
fn cards(r: &Report) -> Vec<(String, String)> {
    let last = |s: &Series| s.points.iter().rev().map(|p| p.1).find(|v| v.is_finite());
    let mut out = Vec::new();
    for s in &r.loss {
        if let Some(v) = last(s) {
            out.push((format!("final {} loss", s.name), fmt_num(v)));
        }
    }
    for s in &r.accuracy {
        if let Some(v) = last(s) {
            out.push((
                format!("final {} accuracy", s.name),
                format!("{:.1} %", 100.0 * v),
            ));
        }
        // The best of a training curve says nothing a held-out one does not.
        if s.name.starts_with("train") {
            continue;
        }
        let best = s
            .points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(f64::NAN, f64::max);
        if best.is_finite() {
            out.push((
                format!("best {} accuracy", s.name),
                format!("{:.1} %", 100.0 * best),
            ));
        }
    }
    if let Some(c) = r.confusion.as_ref().filter(|_| r.accuracy.is_empty()) {
        out.push((
            "confusion-matrix accuracy".into(),
            format!("{:.1} %", 100.0 * c.accuracy()),
        ));
    }
    out
}

/// The layers in order of first appearance, and each layer's (epoch, value) points of one
/// diagnostic.
fn layer_panels(
    rows: &[LayerStats],
    model: Option<&nn::Summary>,
    pick: impl Fn(&LayerStats) -> Option<f64>,
) -> Vec<Panel> {
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.layer.as_str()) {
            names.push(&r.layer);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let points = rows
                .iter()
                .filter(|r| r.layer == name)
                .filter_map(|r| Some((r.epoch as f64, pick(r)?)))
                .filter(|p| p.1.is_finite())
                .collect();
            let type_name = model.and_then(|m| m.row(name)).map(|r| r.type_name);
            Panel {
                title: match type_name {
                    Some(t) => format!("{name} · {t}"),
                    None => name.to_string(),
                },
                series: vec![Series::new(name, points)],
            }
        })
        // A layer that does not have this diagnostic (a linear layer's dead fraction)
        // gets no panel, rather than an empty one.
        .filter(|p: &Panel| p.series.iter().any(|s| !s.points.is_empty()))
        .collect()
}

/// The model summary as a table (paths indented by depth) with its totals.
fn model_section(h: &mut String, m: &nn::Summary) {
    h.push_str("<h2 id=\"model\">Model</h2>\n<table>\n<tr><th>layer</th><th>type</th><th>output shape</th><th>parameters</th></tr>\n");
    for r in &m.rows {
        let name = if r.path.is_empty() {
            "(model)"
        } else {
            &r.path
        };
        let shape = if r.output_shapes.is_empty() {
            "–".to_string()
        } else {
            let s: Vec<String> = r.output_shapes.iter().map(|s| s.to_string()).collect();
            s.join(", ")
        };
        let calls = if r.calls > 1 {
            format!(" ×{}", r.calls)
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"path\">{}{}</td><td>{}</td><td>{}{}</td><td class=\"n\">{}</td></tr>",
            "  ".repeat(r.depth),
            escape(name),
            escape(r.type_name),
            escape(&shape),
            calls,
            r.params
        );
    }
    let inputs: Vec<String> = m.input_shapes.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(
        h,
        "</table>\n<p>{} parameters in {} tensors ({} bytes each); input {}.</p>",
        m.total_params,
        m.param_tensors,
        m.elem_bytes,
        escape(&inputs.join(", "))
    );
}

type Pick = fn(&LayerStats) -> Option<f64>;

impl Report {
    /// The report as one HTML document: inline CSS and SVG, no script, no external
    /// resource, readable offline and printable.
    ///
    /// # Errors
    /// [`PlotError`] when a figure cannot be drawn (a confusion matrix that is not square).
    pub fn to_html(&self) -> Result<String, PlotError> {
        let mut h = String::new();
        let title = escape(&self.title);
        // Writing into a String cannot fail, so `write!` results are ignored throughout.
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
        );
        let x = escape(self.x_label.as_deref().unwrap_or("epoch"));
        let has_curves =
            !(self.loss.is_empty() && self.accuracy.is_empty() && self.learning_rate.is_empty());
        let sections: [(&str, &str, bool); 5] = [
            ("config", "Configuration", !self.config.is_empty()),
            ("model", "Model", self.model.is_some()),
            ("curves", "Training curves", has_curves),
            ("layers", "Layers", !self.layers.is_empty()),
            ("confusion", "Confusion matrix", self.confusion.is_some()),
        ];
        h.push_str("<nav>");
        for (id, name, shown) in sections {
            if shown {
                let _ = write!(h, "<a href=\"#{id}\">{name}</a>");
            }
        }
        h.push_str("</nav>\n");
        let cards = cards(self);
        if !cards.is_empty() {
            h.push_str("<div class=\"cards\">");
            for (k, v) in cards {
                let _ = write!(
                    h,
                    "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
                    escape(&v),
                    escape(&k)
                );
            }
            h.push_str("</div>\n");
        }
        for n in &self.notes {
            let _ = writeln!(h, "<p>{}</p>", escape(n));
        }

        if !self.config.is_empty() {
            h.push_str("<h2 id=\"config\">Configuration</h2>\n<table>\n");
            for (k, v) in &self.config {
                let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
            }
            h.push_str("</table>\n");
        }
        if let Some(m) = &self.model {
            model_section(&mut h, m);
        }
        if has_curves {
            h.push_str("<h2 id=\"curves\">Training curves</h2>\n<div class=\"figs\">\n");
            for (series, name, y) in [
                (&self.loss, "Loss", "loss"),
                (&self.accuracy, "Accuracy", "accuracy"),
                (&self.learning_rate, "Learning rate", "learning rate"),
            ] {
                if !series.is_empty() {
                    let svg = line_chart_svg(name, (&x, y), series, None)?;
                    let _ = writeln!(h, "<figure class=\"chart\">{}</figure>", inline(&svg));
                }
            }
            h.push_str("</div>\n");
        }
        if !self.layers.is_empty() {
            self.layers_section(&mut h)?;
        }
        if let Some(c) = &self.confusion {
            let classes: Vec<&str> = c.classes.iter().map(String::as_str).collect();
            let svg = confusion_matrix_svg("held-out predictions", &classes, &c.counts)?;
            let _ = writeln!(h, "<h2 id=\"confusion\">Confusion matrix</h2>\n<div class=\"figs\">\n<figure>{}</figure>", inline(&svg));
            h.push_str("<table>\n<tr><th>class</th><th>recall</th><th>precision</th><th>examples</th></tr>\n");
            for ((name, (recall, precision)), row) in
                c.classes.iter().zip(c.per_class()).zip(&c.counts)
            {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td>{}{}<td class=\"n\">{}</td></tr>",
                    escape(name),
                    cell(recall),
                    cell(precision),
                    row.iter().sum::<u64>()
                );
            }
            h.push_str("</table>\n</div>\n");
        }
        h.push_str("<footer>Written by gradlab. One self-contained file: no script, no network.</footer>\n</body>\n</html>\n");
        Ok(h)
    }

    fn layers_section(&self, h: &mut String) -> Result<(), PlotError> {
        h.push_str("<h2 id=\"layers\">Layers</h2>\n");
        h.push_str("<p>Each panel is one layer, over epochs; panels of a figure share their axes, so layers compare by eye.</p>\n");
        let metrics: [(&str, Pick, &str); 3] = [
            (
                "saturated fraction",
                |r| r.saturation,
                "units in the flat tails of sigmoid/tanh",
            ),
            (
                "dead fraction",
                |r| r.dead_fraction,
                "ReLU units that output 0 for the whole batch",
            ),
            (
                "log10 gradient norm",
                |r| r.grad_norm.filter(|&g| g > 0.0).map(f64::log10),
                "vanishing gradients show as a fall from layer to layer",
            ),
        ];
        for (name, pick, caption) in metrics {
            let panels = layer_panels(&self.layers, self.model.as_ref(), pick);
            if panels.is_empty() {
                continue;
            }
            let cols = panels.len().min(5);
            let svg = small_multiples_svg(name, &panels, cols, (240, 160), None)?;
            let _ = writeln!(
                h,
                "<figure>{}<figcaption>{}: {}</figcaption></figure>",
                inline(&svg),
                escape(name),
                escape(caption)
            );
        }
        let last = self.layers.iter().map(|r| r.epoch).max().unwrap_or(0);
        let _ = writeln!(h, "<table>\n<tr><th>layer (epoch {last})</th><th>saturated</th><th>dead</th><th>gradient norm</th></tr>");
        for r in self.layers.iter().filter(|r| r.epoch == last) {
            let _ = writeln!(
                h,
                "<tr><td>{}</td>{}{}{}</tr>",
                escape(&r.layer),
                cell(r.saturation),
                cell(r.dead_fraction),
                cell(r.grad_norm)
            );
        }
        h.push_str("</table>\n");
        Ok(())
    }

    /// Writes [`Report::to_html`] to `path`, creating its folder.
    ///
    /// # Errors
    /// [`PlotError::Io`] when the folder or file cannot be written; as
    /// [`Report::to_html`].
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::plot::out_dir(dir)?;
        }
        std::fs::write(path, self.to_html()?).map_err(|source| PlotError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Confusion;
    use super::*;

    const VOID: &[&str] = &[
        "meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr",
    ];

    /// Checks that every tag is closed in order (void elements and `/>` excepted) and that
    /// every `&` starts an entity; returns the element names seen.
    fn well_formed(html: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find(['<', '&']) {
            let tail = &rest[i..];
            if let Some(entity) = tail.strip_prefix('&') {
                let end = entity.find(';').expect("an entity ends with ';'");
                let name = &entity[..end];
                assert!(
                    ["amp", "lt", "gt", "quot", "apos", "#39"].contains(&name)
                        || name.starts_with('#') && name[1..].chars().all(|c| c.is_ascii_digit()),
                    "bare '&' or unknown entity {name:?}"
                );
                rest = entity;
                continue;
            }
            let end = tail.find('>').expect("unclosed '<'");
            let tag = &tail[1..end];
            rest = &tail[end + 1..];
            if tag.starts_with('!') {
                continue; // doctype
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack
                    .pop()
                    .unwrap_or_else(|| panic!("</{name}> closes nothing"));
                assert_eq!(open, name, "</{name}> closes <{open}>");
                continue;
            }
            let name: String = tag
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "bad tag <{tag}>"
            );
            seen.push(name.clone());
            if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        seen
    }

    fn full_report() -> Report {
        let epochs = 1..=6u64;
        let curve = |f: fn(f64) -> f64| epochs.clone().map(|e| (e as f64, f(e as f64))).collect();
        let mut layers = Vec::new();
        for e in epochs.clone() {
            for (i, name) in ["fc1", "fc2 <tanh>", "out"].iter().enumerate() {
                layers.push(LayerStats {
                    epoch: e,
                    layer: name.to_string(),
                    saturation: (i == 1).then_some(0.3 / e as f64),
                    dead_fraction: (i == 0).then_some(0.05 * e as f64),
                    grad_norm: Some(10f64.powi(-(i as i32)) / e as f64),
                });
            }
        }
        let truth: Vec<usize> = (0..100).map(|i| i % 3).collect();
        let pred: Vec<usize> = (0..100)
            .map(|i| if i % 7 == 0 { (i + 1) % 3 } else { i % 3 })
            .collect();
        Report {
            title: "digits & friends <MLP>".into(),
            config: vec![
                ("lr".into(), "0.01".into()),
                ("note".into(), "a \"quoted\" <value>".into()),
            ],
            model: Some(nn::Summary {
                rows: ["", "fc1", "fc2 <tanh>", "out"]
                    .iter()
                    .enumerate()
                    .map(|(i, p)| nn::summary::SummaryRow {
                        path: p.to_string(),
                        depth: (i > 0) as usize,
                        type_name: if i == 0 { "Mlp" } else { "Linear" },
                        output_shapes: vec![autograd::Shape::from([8, 10])],
                        calls: 1,
                        params: 10,
                    })
                    .collect(),
                input_shapes: vec![autograd::Shape::from([8, 64])],
                total_params: 30,
                frozen_params: 0,
                param_tensors: 6,
                buffer_elems: 0,
                elem_bytes: 4,
            }),
            loss: vec![
                Series::new("train", curve(|e| 2.0 / e)),
                Series::new("held out", curve(|e| 2.2 / e)),
            ],
            accuracy: vec![Series::new("held out", curve(|e| 1.0 - 0.5 / e))],
            learning_rate: vec![Series::new("lr", curve(|e| 0.01 * 0.9f64.powf(e)))],
            x_label: None,
            layers,
            confusion: Some(
                Confusion::from_predictions(&["zero", "one", "two"], &truth, &pred).unwrap(),
            ),
            notes: vec!["Expect ~97 % & no divergence.".into()],
        }
    }

    #[test]
    fn the_report_is_well_formed_and_has_every_section() {
        let html = full_report().to_html().unwrap();
        let tags = well_formed(&html);
        for id in ["config", "model", "curves", "layers", "confusion"] {
            assert!(
                html.contains(&format!("id=\"{id}\"")),
                "section {id} missing"
            );
        }
        // loss, accuracy, lr; saturation, dead, grad norm small multiples; confusion
        assert_eq!(tags.iter().filter(|t| *t == "svg").count(), 7);
        assert!(html.contains("digits &amp; friends &lt;MLP&gt;"));
        assert!(html.contains("fc2 &lt;tanh&gt;"));
        assert!(html.contains("final train loss") && html.contains("best held out accuracy"));
    }

    #[test]
    fn the_report_is_self_contained() {
        let html = full_report().to_html().unwrap();
        let lower = html.to_lowercase();
        for banned in [
            "http://", "https://", "<script", "<link", "<iframe", "@import", "url(", "src=",
        ] {
            assert!(!lower.contains(banned), "found {banned:?}");
        }
    }

    #[test]
    fn empty_parts_are_left_out() {
        let html = Report::new("empty").to_html().unwrap();
        well_formed(&html);
        assert!(!html.contains("<svg") && !html.contains("<h2"));
        // a report with only layers that measured nothing still renders its table
        let r = Report {
            layers: vec![LayerStats {
                epoch: 0,
                layer: "a".into(),
                ..Default::default()
            }],
            ..Report::new("layers")
        };
        let html = r.to_html().unwrap();
        well_formed(&html);
        assert!(html.contains("<td>a</td>"));
    }

    #[test]
    fn confusion_counts_and_rates() {
        let c = Confusion::from_predictions(&["a", "b"], &[0, 0, 1, 1], &[0, 1, 1, 1]).unwrap();
        assert_eq!(c.counts, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(c.accuracy(), 0.75);
        assert_eq!(
            c.per_class(),
            vec![(Some(0.5), Some(1.0)), (Some(1.0), Some(2.0 / 3.0))]
        );
        assert!(Confusion::from_predictions(&["a"], &[0], &[1]).is_err());
        assert!(Confusion::from_predictions(&["a"], &[0], &[]).is_err());
    }

    #[test]
    fn write_creates_the_folder() {
        let dir = std::env::temp_dir().join(format!("gradlab-report-{}", std::process::id()));
        let p = dir.join("run").join("report.html");
        full_report().write(&p).unwrap();
        well_formed(&std::fs::read_to_string(&p).unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }
}
