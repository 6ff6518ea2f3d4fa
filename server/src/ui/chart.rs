//! Inline SVG charts, rendered on the server (readable without JavaScript or external
//! resources): horizontal bars for counts by a label, columns for counts over days. Labels go
//! through [`esc`]; links must already be escaped.

use super::html::esc;

/// One bar: its label, its count and where clicking it leads (an escaped href).
pub struct Bar {
    pub label: String,
    pub value: i64,
    pub href: Option<String>,
}

const WIDTH: i64 = 820;
const LABEL_W: i64 = 300;
const BAR_W: i64 = 430;
const ROW_H: i64 = 22;

/// `s` cut to `max` characters with an ellipsis.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn link(href: &Option<String>, inner: String) -> String {
    match href {
        Some(h) => format!("<a href=\"{h}\">{inner}</a>"),
        None => inner,
    }
}

/// Horizontal bars, one row per entry, longest bar = largest value.
pub fn hbars(id: &str, title: &str, bars: &[Bar]) -> String {
    if bars.is_empty() {
        return format!("<p id=\"{id}\">{}: no records.</p>", esc(title));
    }
    let max = bars.iter().map(|b| b.value).max().unwrap_or(1).max(1);
    let height = ROW_H * bars.len() as i64 + 8;
    let mut svg = format!(
        "<figure><figcaption>{t}</figcaption><svg id=\"{id}\" class=\"chart\" \
         xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{t}\">\n",
        t = esc(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 4 + ROW_H * i as i64;
        let w = (b.value * BAR_W / max).max(1);
        let row = format!(
            "<g><title>{label}: {v}</title>\
             <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{short}</text>\
             <rect x=\"{LABEL_W}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"#4a78b0\"/>\
             <text x=\"{vx}\" y=\"{ty}\">{v}</text></g>",
            label = esc(&b.label),
            short = esc(&cut(&b.label, 42)),
            v = b.value,
            lx = LABEL_W - 6,
            ty = y + 15,
            h = ROW_H - 6,
            vx = LABEL_W + w + 5,
        );
        svg.push_str(&link(&b.href, row));
        svg.push('\n');
    }
    svg.push_str("</svg></figure>");
    svg
}

/// Vertical columns over an ordered axis (days), a label under every `label_every`-th column.
pub fn columns(id: &str, title: &str, bars: &[Bar], label_every: usize) -> String {
    if bars.is_empty() {
        return format!("<p id=\"{id}\">{}: no records.</p>", esc(title));
    }
    let max = bars.iter().map(|b| b.value).max().unwrap_or(1).max(1);
    let (plot_h, top, left) = (160, 16, 50);
    let height = plot_h + top + 36;
    let step = ((WIDTH - left - 10) / bars.len() as i64).clamp(4, 60);
    let mut svg = format!(
        "<figure><figcaption>{t}</figcaption><svg id=\"{id}\" class=\"chart\" \
         xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"{ax}\" y=\"{top}\" text-anchor=\"end\">{max}</text>\
         <line x1=\"{left}\" y1=\"{base}\" x2=\"{WIDTH}\" y2=\"{base}\" stroke=\"#999\"/>\n",
        t = esc(title),
        ax = left - 4,
        base = top + plot_h,
    );
    for (i, b) in bars.iter().enumerate() {
        let x = left + 2 + step * i as i64;
        let h = (b.value * plot_h / max).max(1);
        let mut col = format!(
            "<g><title>{label}: {v}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" \
             height=\"{h}\" fill=\"#4a78b0\"/></g>",
            label = esc(&b.label),
            v = b.value,
            y = top + plot_h - h,
            w = (step - 2).max(2),
        );
        col = link(&b.href, col);
        if i % label_every.max(1) == 0 {
            col.push_str(&format!(
                "<text x=\"{x}\" y=\"{ly}\">{}</text>",
                esc(&cut(&b.label, 10)),
                ly = top + plot_h + 16
            ));
        }
        svg.push_str(&col);
        svg.push('\n');
    }
    svg.push_str("</svg></figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = hbars(
            "c",
            "By <x>",
            &[
                Bar {
                    label: "a<b>".into(),
                    value: 10,
                    href: Some("./records?x=1".into()),
                },
                Bar {
                    label: "b".into(),
                    value: 5,
                    href: None,
                },
            ],
        );
        assert!(svg.contains(&format!("width=\"{BAR_W}\"")));
        assert!(svg.contains(&format!("width=\"{}\"", BAR_W / 2)));
        assert!(svg.contains("a&lt;b&gt;") && !svg.contains("a<b>"));
        assert!(svg.contains("By &lt;x&gt;"));
        assert!(svg.contains("<a href=\"./records?x=1\">"));
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
