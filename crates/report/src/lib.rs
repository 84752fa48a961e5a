//! Reports, the last stage of the pipeline: pictures of results as PNG files.
//! The DejaVu Sans font is embedded (`assets/`, Bitstream Vera licence), so no
//! system font library is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Errors while drawing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot draw {path}: {reason}")]
    Draw { path: String, reason: String },
    #[error("nothing to draw: {0}")]
    Empty(&'static str),
}

static FONT: Once = Once::new();

/// Font family name every chart uses.
pub const FONT_FAMILY: &str = "sans-serif";

fn register_font() {
    FONT.call_once(|| {
        plotters::style::register_font(
            FONT_FAMILY,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the embedded DejaVu font is valid"));
    });
}

/// Colours of successive series.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A grouped bar chart: one group of bars per category, one bar per series
/// (e.g. conditions × query lengths), values from 0 to `y_max`.
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
    y_max: f64,
) -> Result<(), ReportError> {
    if categories.is_empty() || series.is_empty() {
        return Err(ReportError::Empty("a bar chart needs categories and series"));
    }
    register_font();
    let draw_err = |e: &dyn std::fmt::Display| ReportError::Draw {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // Wide enough that each category's label fits under its group of bars.
    let longest = categories.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    let per_group = (40 + 18 * series.len()).max(longest * 8 + 16);
    let width = (160 + categories.len() * per_group).clamp(640, 3200) as u32;
    let root = BitMapBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    let n = categories.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
        .map_err(|e| draw_err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_label)
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 && i < n {
                categories[i].clone()
            } else {
                String::new()
            }
        })
        .label_style((FONT_FAMILY, 13))
        .draw()
        .map_err(|e| draw_err(&e))?;
    let slot = 0.8 / series.len() as f64;
    for (s, (name, values)) in series.iter().enumerate() {
        let colour = PALETTE[s % PALETTE.len()];
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                let x0 = i as f64 + 0.1 + s as f64 * slot;
                Rectangle::new([(x0, 0.0), (x0 + slot * 0.9, v.clamp(0.0, y_max))], colour.filled())
            }))
            .map_err(|e| draw_err(&e))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT_FAMILY, 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| draw_err(&e))?;
    root.present().map_err(|e| draw_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("chart.png");
        let cats: Vec<String> = ["noise 0 dB", "noise 10 dB", "noise 20 dB"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let series = vec![
            ("1 s".to_string(), vec![10.0, 40.0, 70.0]),
            ("5 s".to_string(), vec![50.0, 80.0, 99.0]),
        ];
        bar_chart(&p, "top-1 hit rate", "%", &cats, &series, 100.0).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], &[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n']);
        assert!(
            bytes.len() > 5_000,
            "a real picture, not an empty canvas: {} bytes",
            bytes.len()
        );
        assert!(bar_chart(&p, "x", "y", &[], &series, 1.0).is_err());
    }
}
