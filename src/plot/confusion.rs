//! A confusion matrix as an SVG heat map.

use std::fmt::Write;

use super::PlotError;

/// Escapes text for SVG/HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A confusion matrix: `counts[t][p]` examples of true class `t` predicted as `p`, drawn
/// as a grid whose cells are shaded by the row's fraction (so each class reads the same
/// whatever its size) and labelled with the count. The diagonal is drawn in blue, errors in
/// red. Written by hand rather than with `plotters`, whose text placement cannot centre a
/// label in a cell.
///
/// ```
/// let svg = gradlab::plot::confusion_matrix_svg("digits", &["0", "1"], &[vec![9, 1], vec![0, 10]])?;
/// assert_eq!(svg.matches("<rect").count(), 4 + 1);   // cells and background
/// # Ok::<(), gradlab::plot::PlotError>(())
/// ```
///
/// # Errors
/// [`PlotError::Invalid`] when `counts` is not `classes.len()` rows of `classes.len()`.
pub fn confusion_matrix_svg(
    title: &str,
    classes: &[&str],
    counts: &[Vec<u64>],
) -> Result<String, PlotError> {
    let k = classes.len();
    if counts.len() != k || counts.iter().any(|r| r.len() != k) {
        return Err(PlotError::Invalid {
            figure: title.to_string(),
            reason: "counts must be a square matrix with one row and column per class",
        });
    }
    let cell = if k <= 12 { 40 } else { 24 };
    let (left, top) = (70, 60);
    // wide enough for the title too (about 9 px per character at 16 px)
    let w = (left + cell * k + 20).max(9 * title.chars().count() + 40);
    let h = top + cell * k + 50;
    let mut s = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(
        s,
        r#"<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#
    );
    let _ = write!(
        s,
        r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="16" text-anchor="middle">{}</text>"#,
        w / 2,
        escape(title)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="44" font-size="12" text-anchor="middle">predicted</text>"#,
        left + cell * k / 2
    );
    let _ = write!(
        s,
        r#"<text x="14" y="{y}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {y})">true</text>"#,
        y = top + cell * k / 2
    );
    for (t, row) in counts.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &c) in row.iter().enumerate() {
            let frac = if total > 0 {
                c as f64 / total as f64
            } else {
                0.0
            };
            let (x, y) = (left + p * cell, top + t * cell);
            let hue = if t == p { "33,102,172" } else { "178,24,43" };
            let _ = write!(
                s,
                r#"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({hue})" fill-opacity="{frac:.3}" stroke="rgb(204,204,204)"/>"#
            );
            if c > 0 {
                let color = if frac > 0.5 { "white" } else { "black" };
                let _ = write!(
                    s,
                    r#"<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="{color}">{c}</text>"#,
                    x + cell / 2,
                    y + cell / 2 + 4
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            left - 6,
            top + t * cell + cell / 2 + 4,
            escape(classes[t])
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            left + t * cell + cell / 2,
            top + k * cell + 16,
            escape(classes[t])
        );
    }
    s.push_str("</svg>");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_carry_counts_and_row_fractions() {
        let svg = confusion_matrix_svg("m", &["a", "b<"], &[vec![3, 1], vec![0, 0]]).unwrap();
        assert!(svg.contains(r#"fill-opacity="0.750""#) && svg.contains(r#"fill-opacity="0.250""#));
        // an empty row is blank, not NaN
        assert!(!svg.contains("NaN"));
        assert!(svg.contains("b&lt;"));
        assert!(svg.contains(">3</text>") && svg.contains(">1</text>"));
        let e = confusion_matrix_svg("m", &["a"], &[vec![1, 2]]).unwrap_err();
        assert!(matches!(e, PlotError::Invalid { .. }), "{e}");
    }
}
