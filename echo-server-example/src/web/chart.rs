//! Server-rendered SVG charts: the geometry is computed here, the markup is in the templates,
//! styling is CSS classes only (the page CSP allows no inline style). Every chart sits beside a
//! table with the same numbers, and intervals are drawn, not hidden.

use echo_core::analysis::BrandMetrics;

/// Width of the chart's coordinate system (the SVG scales to its container).
pub const WIDTH: f64 = 640.0;
/// Where the bars start: the brand names sit to the left.
const PLOT_X: f64 = 170.0;
/// Room on the right for the value labels.
const PLOT_W: f64 = WIDTH - PLOT_X - 70.0;
const ROW: f64 = 30.0;
const TOP: f64 = 24.0;

/// One brand's bar: visibility with its Wilson 95% interval as a whisker.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The brand.
    pub name: String,
    /// Whether it is the experiment's target.
    pub target: bool,
    /// Baseline of the row's text.
    pub text_y: String,
    /// Top of the bar.
    pub y: String,
    /// Bar width (the rate).
    pub width: String,
    /// Whisker ends (the interval) and its vertical centre.
    pub lo: String,
    /// Upper whisker end.
    pub hi: String,
    /// The whisker's y.
    pub mid: String,
    /// Where the value label starts.
    pub label_x: String,
    /// "42.0% (95% interval 30.1–54.8%, n = 50)", also the tooltip.
    pub label: String,
    /// The short value shown at the bar's end.
    pub value: String,
}

/// A horizontal bar chart of visibility per brand.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// The bars, in the metrics' order (target first).
    pub bars: Vec<Bar>,
    /// The viewBox height.
    pub height: String,
    /// Grid lines: (x, label) at 0, 25, 50, 75 and 100%.
    pub ticks: Vec<(String, &'static str)>,
    /// Bottom of the grid lines.
    pub grid_bottom: String,
    /// Where the bars start.
    pub plot_x: String,
}

fn x(rate: f64) -> f64 {
    PLOT_X + rate.clamp(0.0, 1.0) * PLOT_W
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// A name that fits left of the bars (the tooltip and the table keep it whole).
fn short(name: &str) -> String {
    const MAX: usize = 20;
    if name.chars().count() <= MAX {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(MAX - 1).collect();
        s.push('…');
        s
    }
}

/// The visibility chart of one run's brands.
pub fn visibility_bars(brands: &[BrandMetrics]) -> BarChart {
    let bars = brands
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let top = TOP + i as f64 * ROW;
            let rate = b.visibility.rate.unwrap_or(0.0);
            let (lo, hi) = b
                .visibility
                .ci95
                .map_or((rate, rate), |ci| (ci.lower, ci.upper));
            let value = b
                .visibility
                .rate
                .map_or_else(|| "–".to_owned(), |r| format!("{:.1}%", r * 100.0));
            let label = match b.visibility.ci95 {
                Some(ci) => format!(
                    "{}: {value} (95% interval {:.1}–{:.1}%, n = {})",
                    b.brand,
                    ci.lower * 100.0,
                    ci.upper * 100.0,
                    b.visibility.n
                ),
                None => format!("{}: {value} (n = {})", b.brand, b.visibility.n),
            };
            Bar {
                name: short(&b.brand),
                target: b.is_target,
                text_y: n(top + 13.0),
                y: n(top),
                width: n(x(rate) - PLOT_X),
                lo: n(x(lo)),
                hi: n(x(hi)),
                mid: n(top + 9.0),
                label_x: n(x(hi.max(rate)) + 6.0),
                label,
                value,
            }
        })
        .collect::<Vec<_>>();
    let bottom = TOP + bars.len() as f64 * ROW;
    BarChart {
        height: n(bottom + 8.0),
        grid_bottom: n(bottom - 6.0),
        ticks: [
            (0.0, "0%"),
            (0.25, "25%"),
            (0.5, "50%"),
            (0.75, "75%"),
            (1.0, "100%"),
        ]
        .iter()
        .map(|&(r, l)| (n(x(r)), l))
        .collect(),
        plot_x: n(PLOT_X),
        bars,
    }
}

#[cfg(test)]
mod tests {
    use echo_core::analysis::Proportion;

    use super::*;

    fn brand(name: &str, successes: u32, n: u32) -> BrandMetrics {
        BrandMetrics {
            brand: name.into(),
            is_target: name == "HubSpot",
            visibility: Proportion::new(successes, n),
            mentions: 0,
            mention_share_of_voice: None,
            answer_share_of_voice: None,
            rank_sum: 0,
            average_rank: None,
            first_place: Proportion::new(0, n),
            list_answers: 0,
            list_position_sum: 0,
            average_list_position: None,
        }
    }

    #[test]
    fn bars_scale_with_the_rate_and_whiskers_span_the_interval() {
        let chart = visibility_bars(&[brand("HubSpot", 25, 50), brand("Salesforce", 50, 50)]);
        assert_eq!(chart.bars.len(), 2);
        let half = &chart.bars[0];
        assert!(half.target);
        assert_eq!(half.width, n(PLOT_W / 2.0));
        let lo: f64 = half.lo.parse().unwrap();
        let hi: f64 = half.hi.parse().unwrap();
        assert!(
            lo < PLOT_X + PLOT_W / 2.0 && hi > PLOT_X + PLOT_W / 2.0,
            "{lo} {hi}"
        );
        assert!(half.label.contains("50.0% (95% interval") && half.label.ends_with("n = 50)"));
        assert_eq!(chart.bars[1].width, n(PLOT_W));
        assert_eq!(chart.ticks.len(), 5);
        let long = visibility_bars(&[brand("A brand with a very long name indeed", 1, 2)]);
        assert_eq!(long.bars[0].name, "A brand with a very…");
        assert!(
            long.bars[0]
                .label
                .starts_with("A brand with a very long name indeed:")
        );
        let empty = visibility_bars(&[brand("HubSpot", 0, 0)]);
        assert_eq!(empty.bars[0].value, "–");
        assert_eq!(empty.bars[0].width, "0.0");
    }
}
