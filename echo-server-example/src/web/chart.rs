//! Server-rendered SVG charts: the geometry is computed here, the markup is in the templates,
//! styling is CSS classes only (the page CSP allows no inline style). Every chart sits beside a
//! table with the same numbers, and intervals are drawn, not hidden.

use echo_core::analysis::BrandMetrics;
use echo_core::service::{ProviderSeries, VoiceShare};

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
    /// Whether a whisker is drawn (a pooled share of mentions has no binomial interval).
    pub has_ci: bool,
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
                has_ci: b.visibility.ci95.is_some(),
            }
        })
        .collect::<Vec<_>>();
    bar_chart(bars)
}

/// The axis and frame around `bars`.
fn bar_chart(bars: Vec<Bar>) -> BarChart {
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

/// Share of voice per brand as bars (the most mentioned first); the label names the mentions
/// the share is out of.
pub fn share_bars(shares: &[VoiceShare]) -> BarChart {
    let total: u64 = shares.iter().map(|s| s.mentions).sum();
    let bars = shares
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let top = TOP + i as f64 * ROW;
            let rate = s.share.unwrap_or(0.0);
            let value = s
                .share
                .map_or_else(|| "–".to_owned(), |r| format!("{:.1}%", r * 100.0));
            Bar {
                name: short(&s.brand),
                target: s.is_target,
                text_y: n(top + 13.0),
                y: n(top),
                width: n(x(rate) - PLOT_X),
                lo: n(x(rate)),
                hi: n(x(rate)),
                mid: n(top + 9.0),
                label_x: n(x(rate) + 6.0),
                label: format!(
                    "{}: {value} of mentions ({} of {total})",
                    s.brand, s.mentions
                ),
                value,
                has_ci: false,
            }
        })
        .collect();
    bar_chart(bars)
}

/// Height of the line chart's coordinate system.
pub const LINE_HEIGHT: f64 = 260.0;
const LINE_X0: f64 = 44.0;
const LINE_X1: f64 = WIDTH - 16.0;
const LINE_Y0: f64 = 12.0;
const LINE_Y1: f64 = LINE_HEIGHT - 36.0;

/// One point of a line, with what its tooltip says.
#[derive(Debug, Clone)]
pub struct LinePoint {
    /// Centre.
    pub cx: String,
    /// Centre.
    pub cy: String,
    /// "openai, 2026-12-07 19:42 UTC: 42.0% (95% interval 30.1–54.8%, n = 50)".
    pub label: String,
}

/// One provider's line with its band.
#[derive(Debug, Clone)]
pub struct LineSeries {
    /// The provider's text form (the legend and the toggle's key).
    pub name: String,
    /// Colour slot (`s0`…`s5`, CSS classes).
    pub slot: usize,
    /// The line's `points` attribute.
    pub line: String,
    /// The band's `points` attribute: the upper bounds forward, the lower ones back.
    pub band: String,
    /// The points.
    pub points: Vec<LinePoint>,
}

/// Visibility over time, one line per provider with its 95% band.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// The lines.
    pub series: Vec<LineSeries>,
    /// Horizontal grid lines: (y, label) at 0, 25, 50, 75 and 100%.
    pub ticks: Vec<(String, &'static str)>,
    /// Date labels under the axis: (x, label, anchor) for the first and last instants.
    pub dates: Vec<(String, String, &'static str)>,
    /// Left and right ends of the plot.
    pub x0: String,
    /// Right end.
    pub x1: String,
    /// Baseline of the date labels.
    pub date_y: String,
}

/// Appends `x,y` (one decimal each) to an SVG `points` list, space-separated.
fn push_xy(out: &mut String, x: f64, y: f64) {
    use std::fmt::Write as _;
    if !out.is_empty() {
        out.push(' ');
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{x:.1},{y:.1}");
}

fn ly(rate: f64) -> f64 {
    LINE_Y1 - rate.clamp(0.0, 1.0) * (LINE_Y1 - LINE_Y0)
}

/// The visibility-over-time chart; `None` without any point to draw.
pub fn visibility_lines(series: &[ProviderSeries]) -> Option<LineChart> {
    let times = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.at.unix_micros()));
    let (min, max) = times.fold(None, |acc: Option<(i64, i64)>, t| {
        Some(acc.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))))
    })?;
    let span = (max - min) as f64;
    let lx = |t: i64| {
        if span <= 0.0 {
            (LINE_X0 + LINE_X1) / 2.0
        } else {
            LINE_X0 + (t - min) as f64 / span * (LINE_X1 - LINE_X0)
        }
    };
    let series = series
        .iter()
        .enumerate()
        .map(|(slot, s)| {
            // Each attribute is written into one buffer: a page draws up to `TREND_RUNS`
            // points, and a string per coordinate was most of the chart's cost.
            let mut line = String::with_capacity(s.points.len() * 12);
            let mut upper = String::with_capacity(s.points.len() * 24);
            let mut lower: Vec<(f64, f64)> = Vec::with_capacity(s.points.len());
            let mut points = Vec::with_capacity(s.points.len());
            for p in &s.points {
                let Some(rate) = p.visibility.rate else {
                    continue;
                };
                let px = lx(p.at.unix_micros());
                let (lo, hi) = p
                    .visibility
                    .ci95
                    .map_or((rate, rate), |ci| (ci.lower, ci.upper));
                push_xy(&mut line, px, ly(rate));
                push_xy(&mut upper, px, ly(hi));
                lower.push((px, ly(lo)));
                let at = super::view::when(&p.at);
                let label = match p.visibility.ci95 {
                    Some(ci) => format!(
                        "{}, {at}: {:.1}% (95% interval {:.1}–{:.1}%, n = {})",
                        s.provider.as_str(),
                        rate * 100.0,
                        ci.lower * 100.0,
                        ci.upper * 100.0,
                        p.visibility.n
                    ),
                    None => format!(
                        "{}, {at}: {:.1}% (n = {})",
                        s.provider.as_str(),
                        rate * 100.0,
                        p.visibility.n
                    ),
                };
                points.push(LinePoint {
                    cx: n(px),
                    cy: n(ly(rate)),
                    label,
                });
            }
            // The band: the upper bounds forward, then the lower ones back.
            for &(x, y) in lower.iter().rev() {
                push_xy(&mut upper, x, y);
            }
            LineSeries {
                name: s.provider.as_str().to_owned(),
                slot: slot % 6,
                line,
                band: upper,
                points,
            }
        })
        .collect();
    let date = |t: i64| {
        echo_core::model::Timestamp::from_unix_micros(t)
            .map(|t| super::view::when(&t))
            .and_then(|s| s.get(..10).map(str::to_owned))
            .unwrap_or_default()
    };
    let mut dates = vec![(n(LINE_X0), date(min), "start")];
    if max > min {
        dates.push((n(LINE_X1), date(max), "end"));
    }
    Some(LineChart {
        series,
        ticks: [
            (0.0, "0%"),
            (0.25, "25%"),
            (0.5, "50%"),
            (0.75, "75%"),
            (1.0, "100%"),
        ]
        .iter()
        .map(|&(r, l)| (n(ly(r)), l))
        .collect(),
        dates,
        x0: n(LINE_X0),
        x1: n(LINE_X1),
        date_y: n(LINE_Y1 + 20.0),
    })
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

    fn point(secs: i64, successes: u32, n: u32) -> echo_core::service::VisibilityPoint {
        echo_core::service::VisibilityPoint {
            at: echo_core::model::Timestamp::from_unix_micros(
                1_765_000_000_000_000 + secs * 1_000_000,
            )
            .unwrap(),
            run_id: echo_core::model::BatchRunId::new(),
            experiment_id: echo_core::model::ExperimentId::new(),
            visibility: Proportion::new(successes, n),
        }
    }

    #[test]
    fn lines_span_the_time_range_and_bands_hold_the_line() {
        use echo_core::model::ProviderKind;
        assert!(visibility_lines(&[]).is_none());
        let chart = visibility_lines(&[
            ProviderSeries {
                provider: ProviderKind::Gemini,
                points: vec![point(0, 0, 10), point(86_400, 10, 10)],
            },
            ProviderSeries {
                provider: ProviderKind::OpenAi,
                points: vec![point(43_200, 5, 10)],
            },
        ])
        .unwrap();
        assert_eq!(chart.series.len(), 2);
        let gemini = &chart.series[0];
        assert_eq!(gemini.name, "gemini");
        assert_eq!(gemini.points[0].cx, n(LINE_X0));
        assert_eq!(gemini.points[0].cy, n(LINE_Y1), "0% sits on the axis");
        assert_eq!(gemini.points[1].cx, n(LINE_X1));
        assert_eq!(gemini.points[1].cy, n(LINE_Y0), "100% at the top");
        assert_eq!(gemini.line.split(' ').count(), 2);
        // Upper bounds forward, lower bounds back: twice the points.
        assert_eq!(gemini.band.split(' ').count(), 4);
        let mid = &chart.series[1].points[0];
        assert_eq!(mid.cx, n((LINE_X0 + LINE_X1) / 2.0));
        assert!(
            mid.label.starts_with("openai, ")
                && mid.label.contains("50.0% (95% interval")
                && mid.label.ends_with("n = 10)"),
            "{}",
            mid.label
        );
        let band_ys: Vec<f64> = chart.series[1]
            .band
            .split(' ')
            .map(|p| p.split_once(',').unwrap().1.parse().unwrap())
            .collect();
        let cy: f64 = mid.cy.parse().unwrap();
        assert!(band_ys[0] < cy && cy < band_ys[1], "{band_ys:?} {cy}");
        assert_eq!(chart.dates.len(), 2);
        let single = visibility_lines(&[ProviderSeries {
            provider: ProviderKind::OpenAi,
            points: vec![point(0, 1, 2)],
        }])
        .unwrap();
        assert_eq!(single.dates.len(), 1);
        assert_eq!(single.series[0].points[0].cx, n((LINE_X0 + LINE_X1) / 2.0));
    }

    #[test]
    fn share_bars_scale_with_the_share_and_name_the_mentions() {
        let shares = [
            VoiceShare {
                brand: "Salesforce".into(),
                is_target: false,
                mentions: 30,
                share: Some(0.75),
            },
            VoiceShare {
                brand: "HubSpot".into(),
                is_target: true,
                mentions: 10,
                share: Some(0.25),
            },
        ];
        let chart = share_bars(&shares);
        assert_eq!(chart.bars[0].width, n(PLOT_W * 0.75));
        assert!(!chart.bars[0].has_ci && chart.bars[1].target);
        assert_eq!(chart.bars[1].label, "HubSpot: 25.0% of mentions (10 of 40)");
    }
}
