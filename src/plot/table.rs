//! Plain-text tables with right-aligned columns (Markdown-compatible).

/// A table with a header row and right-aligned columns, as Markdown:
///
/// ```
/// let t = gradlab::plot::format_table(&["layer", "std"], &[vec!["fc1".into(), "0.98".into()]]);
/// assert_eq!(t, "| layer |  std |\n|-------|------|\n|   fc1 | 0.98 |\n");
/// ```
///
/// Rows shorter than the header leave their last cells empty; extra cells are dropped.
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(w.len()) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = w
            .iter()
            .map(|&width| format!("{:>width$}", cells.next().unwrap_or("")))
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(&mut header.iter().copied());
    let rule: Vec<String> = w.iter().map(|n| "-".repeat(n + 2)).collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

/// Prints [`format_table`] to standard output.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", format_table(header, rows));
}
