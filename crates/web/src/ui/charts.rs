//! Charts drawn by the server as SVG: the geometry is computed here, the markup (with every
//! label escaped) is in templates/macros.html.

use super::format::thousands;

/// A horizontal bar chart: one labelled row per value.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Used for the SVG's accessible name and the ids of its title.
    pub id: String,
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// The label as drawn beside the bar.
    pub short: String,
    pub value_text: String,
    /// Where the row starts (top).
    pub y: u32,
    /// Bar length in pixels.
    pub w: u32,
    /// Where the value is written.
    pub value_x: u32,
    /// Which colour (a CSS class).
    pub class: String,
    /// Where a click on the row leads.
    pub href: Option<String>,
}

const ROW: u32 = 30;
const LABEL_WIDTH: u32 = 190;
/// Longer labels are cut (the full label is in the bar's tooltip and the table).
const LABEL_CHARS: usize = 26;
const BAR_MAX: u32 = 380;

impl BarChart {
    /// `rows` are (label, value, CSS class, link).
    pub fn new(id: &str, title: &str, rows: Vec<(String, i64, String, Option<String>)>) -> Self {
        let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
        let bars = rows
            .into_iter()
            .enumerate()
            .map(|(i, (label, value, class, href))| {
                let w = if value <= 0 { 0 } else { ((value as f64 / max as f64) * f64::from(BAR_MAX)).round().max(2.0) as u32 };
                Bar {
                    short: super::format::clip(&label, LABEL_CHARS),
                    label,
                    value_text: thousands(value),
                    y: i as u32 * ROW + 4,
                    w,
                    value_x: LABEL_WIDTH + w + 8,
                    class,
                    href,
                }
            })
            .collect::<Vec<_>>();
        let height = bars.len() as u32 * ROW + 8;
        Self { id: id.to_string(), title: title.to_string(), width: LABEL_WIDTH + BAR_MAX + 70, height, bars }
    }

    pub fn label_width(&self) -> u32 {
        LABEL_WIDTH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest() {
        let c = BarChart::new(
            "c",
            "Sizes",
            vec![("a".into(), 10, "s1".into(), None), ("b".into(), 5, "s2".into(), None), ("z".into(), 0, "s3".into(), None)],
        );
        assert_eq!(c.bars[0].w, BAR_MAX);
        assert_eq!(c.bars[1].w, BAR_MAX / 2);
        assert_eq!(c.bars[2].w, 0);
        assert_eq!(c.bars[1].y, ROW + 4);
        assert_eq!(c.height, 3 * ROW + 8);
    }
}
