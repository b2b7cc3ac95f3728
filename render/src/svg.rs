//! Small hand-built SVG charts for `report.html`: text escaping, linear
//! scales, tick steps, percentiles, and an [`Svg`] writer whose many-mark
//! layers are single `<path>`s with one pixel-deduplicated mark per
//! position, so a chart stays small however long the history is.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Escape text for HTML (element content and quoted attributes). `://` is
/// written as `&#58;//` so no URL ever appears literally in the page.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out.replace("://", "&#58;//")
}

/// A linear map from a domain to a pixel range.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    domain: (f64, f64),
    range_px: (f64, f64),
}

impl Scale {
    /// An empty domain (`lo == hi`) is widened by one unit.
    pub fn new(domain: (f64, f64), range_px: (f64, f64)) -> Scale {
        let (lo, hi) = domain;
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Scale {
            domain: (lo, hi),
            range_px,
        }
    }

    /// The pixel position of `value` (clamped to the range).
    pub fn at(&self, value: f64) -> f64 {
        let (lo, hi) = self.domain;
        let f = ((value - lo) / (hi - lo)).clamp(0.0, 1.0);
        self.range_px.0 + f * (self.range_px.1 - self.range_px.0)
    }

    pub fn domain(&self) -> (f64, f64) {
        self.domain
    }
}

/// The nearest-rank percentile (`p` in 0..=100) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Round tick positions (steps of 1, 2 or 5 × 10^n) covering `lo..=hi`,
/// at most about `max_count` of them.
pub fn ticks(lo: f64, hi: f64, max_count: usize) -> Vec<f64> {
    if hi <= lo || max_count == 0 {
        return vec![lo];
    }
    let rough = (hi - lo) / max_count as f64;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick label: no decimals for whole numbers.
pub fn number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        format!("{value:.1}")
    }
}

/// Many marks drawn as one `<path>`: at most one per integer pixel.
#[derive(Default)]
pub struct Marks {
    d: String,
    seen: BTreeSet<(i64, i64)>,
}

impl Marks {
    /// A dot at (x, y): draw it with a round line cap.
    pub fn dot(&mut self, x_px: f64, y_px: f64) {
        let (x, y) = (x_px.round() as i64, y_px.round() as i64);
        if self.seen.insert((x, y)) {
            let _ = write!(self.d, "M{x} {y}h0");
        }
    }

    /// A vertical tick of `height_px` starting at (x, y).
    pub fn tick(&mut self, x_px: f64, y_px: f64, height_px: f64) {
        let (x, y) = (x_px.round() as i64, y_px.round() as i64);
        if self.seen.insert((x, y)) {
            let _ = write!(self.d, "M{x} {y}v{}", height_px.round() as i64);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// A polyline's points, at most one per integer x pixel (the last wins).
pub fn points(xy_px: &[(f64, f64)]) -> String {
    let mut out = String::new();
    let mut last_x: Option<i64> = None;
    let mut pending: Option<(i64, i64)> = None;
    for &(x, y) in xy_px {
        let (x, y) = (x.round() as i64, y.round() as i64);
        if last_x == Some(x) {
            pending = Some((x, y));
            continue;
        }
        if let Some((px, py)) = pending.take() {
            let _ = write!(out, "{px},{py} ");
        }
        let _ = write!(out, "{x},{y} ");
        last_x = Some(x);
    }
    if let Some((px, py)) = pending {
        let _ = write!(out, "{px},{py} ");
    }
    out.trim_end().to_string()
}

/// An inline `<svg>` being written (no `xmlns`: HTML5 does not need it).
pub struct Svg {
    out: String,
    elements: usize,
}

impl Svg {
    pub fn new(id: &str, class: &str, width_px: u32, height_px: u32, label: &str) -> Svg {
        let out = format!(
            "<svg id=\"{}\" class=\"{}\" width=\"{width_px}\" height=\"{height_px}\" \
             viewBox=\"0 0 {width_px} {height_px}\" role=\"img\" aria-label=\"{}\">",
            escape(id),
            escape(class),
            escape(label)
        );
        Svg { out, elements: 0 }
    }

    /// How many elements were written so far.
    #[cfg(test)]
    pub fn elements(&self) -> usize {
        self.elements
    }

    pub fn rect(&mut self, x_px: f64, y_px: f64, w_px: f64, h_px: f64, class: &str, title: &str) {
        self.elements += 1;
        let _ = write!(
            self.out,
            "<rect x=\"{x_px:.1}\" y=\"{y_px:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"{class}\">",
            w_px.max(1.0),
            h_px.max(0.0)
        );
        self.title_and_close(title, "rect");
    }

    pub fn circle(&mut self, x_px: f64, y_px: f64, r_px: f64, class: &str, title: &str) {
        self.elements += 1;
        let _ = write!(
            self.out,
            "<circle cx=\"{x_px:.1}\" cy=\"{y_px:.1}\" r=\"{r_px}\" class=\"{class}\">"
        );
        self.title_and_close(title, "circle");
    }

    pub fn line(&mut self, from_px: (f64, f64), to_px: (f64, f64), class: &str) {
        self.elements += 1;
        let _ = write!(
            self.out,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"{class}\"/>",
            from_px.0, from_px.1, to_px.0, to_px.1
        );
    }

    /// Text; `anchor` is `start`, `middle` or `end`.
    pub fn text(&mut self, x_px: f64, y_px: f64, anchor: &str, class: &str, text: &str) {
        self.elements += 1;
        let _ = write!(
            self.out,
            "<text x=\"{x_px:.1}\" y=\"{y_px:.1}\" text-anchor=\"{anchor}\" class=\"{class}\">{}</text>",
            escape(text)
        );
    }

    pub fn marks(&mut self, marks: &Marks, class: &str) {
        if !marks.is_empty() {
            self.elements += 1;
            let _ = write!(self.out, "<path d=\"{}\" class=\"{class}\"/>", marks.d);
        }
    }

    pub fn polyline(&mut self, xy_px: &[(f64, f64)], class: &str) {
        if !xy_px.is_empty() {
            self.elements += 1;
            let _ = write!(
                self.out,
                "<polyline points=\"{}\" class=\"{class}\"/>",
                points(xy_px)
            );
        }
    }

    /// A horizontal axis at `y_px` with round ticks (only whole ones when
    /// `whole_numbers`), labelled by `label`.
    pub fn x_axis(&mut self, scale: &Scale, y_px: f64, label: &str, whole_numbers: bool) {
        let (lo, hi) = scale.domain();
        let (x0, x1) = (scale.at(lo), scale.at(hi));
        self.line((x0, y_px), (x1, y_px), "axis");
        let whole = |t: &f64| !whole_numbers || t.fract() == 0.0;
        for t in ticks(lo, hi, 8).into_iter().filter(whole) {
            let x = scale.at(t);
            self.line((x, y_px), (x, y_px + 4.0), "axis");
            self.text(x, y_px + 15.0, "middle", "tick", &number(t));
        }
        self.text((x0 + x1) / 2.0, y_px + 29.0, "middle", "label", label);
    }

    /// A vertical axis at `x_px` with round ticks, labelled by `label`.
    pub fn y_axis(&mut self, scale: &Scale, x_px: f64, label: &str) {
        let (lo, hi) = scale.domain();
        let (y0, y1) = (scale.at(lo), scale.at(hi));
        self.line((x_px, y0), (x_px, y1), "axis");
        for v in ticks(lo, hi, 5) {
            let y = scale.at(v);
            self.line((x_px - 4.0, y), (x_px, y), "axis");
            self.text(x_px - 6.0, y + 4.0, "end", "tick", &number(v));
        }
        self.text(x_px - 6.0, y1 - 8.0, "start", "label", label);
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }

    fn title_and_close(&mut self, title: &str, tag: &str) {
        if !title.is_empty() {
            let _ = write!(self.out, "<title>{}</title>", escape(title));
        }
        let _ = write!(self.out, "</{tag}>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_maps_its_domain_onto_its_range_and_clamps() {
        let s = Scale::new((0.0, 10.0), (100.0, 200.0));
        assert_eq!(s.at(0.0), 100.0);
        assert_eq!(s.at(5.0), 150.0);
        assert_eq!(s.at(20.0), 200.0);
        let inverted = Scale::new((0.0, 10.0), (200.0, 100.0));
        assert_eq!(inverted.at(10.0), 100.0);
        let empty = Scale::new((3.0, 3.0), (0.0, 10.0));
        assert_eq!(empty.at(3.0), 0.0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 0.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn ticks_are_round_and_cover_the_domain() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 1000.0, 4), vec![0.0, 500.0, 1000.0]);
        assert_eq!(ticks(5.0, 5.0, 4), vec![5.0]);
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.5), "0.5");
    }

    #[test]
    fn marks_keep_one_per_pixel() {
        let mut m = Marks::default();
        for i in 0..1000 {
            m.tick(i as f64 / 100.0, 5.0, 8.0);
        }
        assert_eq!(m.len(), 11);
        assert_eq!(points(&[(0.0, 1.0), (0.2, 2.0), (1.0, 3.0)]), "0,1 0,2 1,3");
    }

    #[test]
    fn escaping_covers_markup_and_urls() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert!(!escape("see https://example.org").contains("https://"));
    }

    #[test]
    fn an_svg_counts_its_elements_and_closes() {
        let mut svg = Svg::new("c", "chart", 100, 50, "a <chart>");
        svg.rect(0.0, 0.0, 10.0, 10.0, "band", "t<1>");
        svg.line((0.0, 0.0), (1.0, 1.0), "axis");
        assert_eq!(svg.elements(), 2);
        let out = svg.finish();
        assert!(out.starts_with("<svg id=\"c\""));
        assert!(out.contains("<title>t&lt;1&gt;</title></rect>"));
        assert!(out.ends_with("</svg>"));
        assert!(!out.contains("xmlns"));
    }
}
