//! Inline SVG charts, rendered on the server (readable without JavaScript or external
//! resources): horizontal bars for counts by a label, columns for counts over days. Labels
//! and links are escaped by the templates.

use maud::{html, Markup};

/// One bar: its label, its count and where clicking it leads.
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

/// `inner`, inside a link to `href` when there is one.
fn linked(href: &Option<String>, inner: Markup) -> Markup {
    html! {
        @if let Some(h) = href { a href=(h) { (inner) } } @else { (inner) }
    }
}

/// The chart's frame: a caption and an SVG of `height` holding `content`.
fn figure(id: &str, title: &str, height: i64, content: Markup) -> Markup {
    html! {
        figure {
            figcaption { (title) }
            svg id=(id) class="chart" xmlns="http://www.w3.org/2000/svg" width=(WIDTH)
                height=(height) viewBox={ "0 0 " (WIDTH) " " (height) } role="img"
                aria-label=(title) { "\n" (content) }
        }
    }
}

fn no_records(id: &str, title: &str) -> Markup {
    html! { p id=(id) { (title) ": no records." } }
}

/// Horizontal bars, one row per entry, longest bar = largest value.
pub fn hbars(id: &str, title: &str, bars: &[Bar]) -> Markup {
    if bars.is_empty() {
        return no_records(id, title);
    }
    let max = bars.iter().map(|b| b.value).max().unwrap_or(1).max(1);
    let height = ROW_H * bars.len() as i64 + 8;
    let rows = html! {
        @for (i, b) in bars.iter().enumerate() {
            @let y = 4 + ROW_H * i as i64;
            @let w = (b.value * BAR_W / max).max(1);
            @let ty = y + 15;
            (linked(&b.href, html! {
                g {
                    title { (b.label) ": " (b.value) }
                    text x=(LABEL_W - 6) y=(ty) text-anchor="end" { (cut(&b.label, 42)) }
                    rect x=(LABEL_W) y=(y) width=(w) height=(ROW_H - 6) fill="#4a78b0" {}
                    text x=(LABEL_W + w + 5) y=(ty) { (b.value) }
                }
            }))
            "\n"
        }
    };
    figure(id, title, height, rows)
}

/// Vertical columns over an ordered axis (days), a label under every `label_every`-th column.
pub fn columns(id: &str, title: &str, bars: &[Bar], label_every: usize) -> Markup {
    if bars.is_empty() {
        return no_records(id, title);
    }
    let max = bars.iter().map(|b| b.value).max().unwrap_or(1).max(1);
    let (plot_h, top, left) = (160, 16, 50);
    let height = plot_h + top + 36;
    let step = ((WIDTH - left - 10) / bars.len() as i64).clamp(4, 60);
    let base = top + plot_h;
    let content = html! {
        text x=(left - 4) y=(top) text-anchor="end" { (max) }
        line x1=(left) y1=(base) x2=(WIDTH) y2=(base) stroke="#999" {}
        "\n"
        @for (i, b) in bars.iter().enumerate() {
            @let x = left + 2 + step * i as i64;
            @let h = (b.value * plot_h / max).max(1);
            (linked(&b.href, html! {
                g {
                    title { (b.label) ": " (b.value) }
                    rect x=(x) y=(base - h) width=((step - 2).max(2)) height=(h) fill="#4a78b0" {}
                }
            }))
            @if i % label_every.max(1) == 0 {
                text x=(x) y=(base + 16) { (cut(&b.label, 10)) }
            }
            "\n"
        }
    };
    figure(id, title, height, content)
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
                    href: Some("./records?x=1&y=2".into()),
                },
                Bar {
                    label: "b".into(),
                    value: 5,
                    href: None,
                },
            ],
        )
        .into_string();
        assert!(svg.contains(&format!("width=\"{BAR_W}\"")));
        assert!(svg.contains(&format!("width=\"{}\"", BAR_W / 2)));
        assert!(svg.contains("a&lt;b&gt;") && !svg.contains("a<b>"));
        assert!(svg.contains("By &lt;x&gt;"));
        assert!(svg.contains("<a href=\"./records?x=1&amp;y=2\">"));
        // SVG shapes are closed elements (an unclosed one would swallow what follows).
        assert_eq!(svg.matches("<rect").count(), svg.matches("</rect>").count());
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
