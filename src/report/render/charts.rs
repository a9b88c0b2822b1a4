//! The report's charts: bar and line charts drawn with `plotters`' SVG backend, as SVG strings
//! to inline in the page.

use super::label;
use plotters::prelude::*;

const W: u32 = 640;
const H: u32 = 300;

/// A vertical bar chart of `(label, count)` as an SVG string.
pub fn bar_chart(title: &str, bars: &[(String, u64)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = bars.len().max(1);
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let top = max + max.div_ceil(10);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((0..n).into_segmented(), 0u64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    bars.get(*i).map(|b| label(&b.0)).unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(RGBColor(0x2b, 0x6c, 0xb0).filled())
                    .margin(8)
                    .data(bars.iter().enumerate().map(|(i, b)| (i, b.1))),
            )
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// A line chart (with points) of the monthly trend as an SVG string.
pub fn line_chart(title: &str, points: &[(String, u64)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = points.len().max(1);
        let max = points.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let top = max + max.div_ceil(10);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n, 0u64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|i| points.get(*i).map(|p| p.0.clone()).unwrap_or_default())
            .draw()
            .map_err(plot_err)?;
        let color = RGBColor(0xc0, 0x39, 0x2b);
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (i, p.1)),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Circle::new((i, p.1), 4, color.filled())),
            )
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}
