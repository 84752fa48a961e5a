//! Reports, the last stage of the pipeline: pictures of results as PNG files.
//! The DejaVu Sans font is embedded (`assets/`, Bitstream Vera licence), so no
//! system font library is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;
use sampleid_fsio::AtomicFile;

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
    // Drawn under a temporary name (keeping the extension, from which the
    // image format is chosen), then moved into place.
    let file = AtomicFile::create(path).map_err(|e| draw_err(&e))?;
    {
        // Wide enough that each category's label fits under its group of bars.
        let longest = categories.iter().map(|c| c.chars().count()).max().unwrap_or(0);
        let per_group = (40 + 18 * series.len()).max(longest * 8 + 16);
        let width = (160 + categories.len() * per_group).clamp(640, 3200) as u32;
        let root = BitMapBackend::new(file.tmp_path(), (width, 480)).into_drawing_area();
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
    }
    file.commit().map_err(|e| draw_err(&e))
}

/// A line chart of several series over a shared x axis (e.g. loss and
/// validation hit rate over training steps). Each series is drawn against
/// its own y range, normalised into the panel: `panels` gives one panel per
/// group of series, stacked vertically, each with its own y label and range.
pub struct Panel {
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws stacked line panels sharing the x axis.
pub fn line_chart(path: &Path, title: &str, x_label: &str, panels: &[Panel]) -> Result<(), ReportError> {
    if panels.is_empty() || panels.iter().all(|p| p.series.iter().all(|(_, s)| s.is_empty())) {
        return Err(ReportError::Empty("a line chart needs points"));
    }
    register_font();
    let draw_err = |e: &dyn std::fmt::Display| ReportError::Draw {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // Drawn under a temporary name (keeping the extension, from which the
    // image format is chosen), then moved into place.
    let file = AtomicFile::create(path).map_err(|e| draw_err(&e))?;
    {
        let root = BitMapBackend::new(file.tmp_path(), (960, 320 * panels.len() as u32 + 40)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let root = root.titled(title, (FONT_FAMILY, 22)).map_err(|e| draw_err(&e))?;
        let areas = root.split_evenly((panels.len(), 1));
        let all = panels.iter().flat_map(|p| p.series.iter().flat_map(|(_, s)| s.iter()));
        let (x0, x1) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(x, _)| {
            (a.min(x), b.max(x))
        });
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        for (area, panel) in areas.iter().zip(panels) {
            let ys = panel.series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1));
            let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
            if !y0.is_finite() {
                continue;
            }
            let pad = ((y1 - y0) * 0.05).max(1e-6);
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
                .map_err(|e| draw_err(&e))?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(panel.y_label.as_str())
                .label_style((FONT_FAMILY, 13))
                .draw()
                .map_err(|e| draw_err(&e))?;
            for (s, (name, points)) in panel.series.iter().enumerate() {
                let colour = PALETTE[s % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                    .map_err(|e| draw_err(&e))?
                    .label(name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT_FAMILY, 13))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| draw_err(&e))?;
        }
        root.present().map_err(|e| draw_err(&e))?;
    }
    file.commit().map_err(|e| draw_err(&e))
}

/// A reliability diagram: per bin of predicted probability, the observed
/// share right (bars at the bins' mean prediction) against the diagonal of
/// perfect calibration; `bins` holds (mean predicted, observed, count).
pub fn reliability_chart(path: &Path, title: &str, bins: &[(f64, f64, usize)]) -> Result<(), ReportError> {
    if bins.iter().all(|b| b.2 == 0) {
        return Err(ReportError::Empty("a reliability diagram needs predictions"));
    }
    register_font();
    let draw_err = |e: &dyn std::fmt::Display| ReportError::Draw {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = AtomicFile::create(path).map_err(|e| draw_err(&e))?;
    {
        let root = BitMapBackend::new(file.tmp_path(), (640, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)
            .map_err(|e| draw_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("predicted confidence")
            .y_desc("observed share right")
            .label_style((FONT_FAMILY, 13))
            .draw()
            .map_err(|e| draw_err(&e))?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|e| draw_err(&e))?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.5).stroke_width(1)));
        let n = bins.len().max(1) as f64;
        let colour = PALETTE[0];
        chart
            .draw_series(bins.iter().enumerate().filter(|(_, b)| b.2 > 0).map(|(i, b)| {
                let (x0, x1) = (i as f64 / n + 0.1 / n, (i + 1) as f64 / n - 0.1 / n);
                Rectangle::new([(x0, 0.0), (x1, b.1)], colour.mix(0.7).filled())
            }))
            .map_err(|e| draw_err(&e))?
            .label("observed, per bin")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], colour.mix(0.7).filled()));
        chart
            .draw_series(bins.iter().enumerate().filter(|(_, b)| b.2 > 0).map(|(i, b)| {
                Text::new(
                    format!("{}", b.2),
                    ((i as f64 + 0.15) / n, (b.1 + 0.02).min(0.97)),
                    (FONT_FAMILY, 11),
                )
            }))
            .map_err(|e| draw_err(&e))?;
        chart
            .draw_series(
                bins.iter()
                    .filter(|b| b.2 > 0)
                    .map(|b| Circle::new((b.0, b.1), 4, PALETTE[3].filled())),
            )
            .map_err(|e| draw_err(&e))?
            .label("(mean predicted, observed)")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, PALETTE[3].filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT_FAMILY, 13))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| draw_err(&e))?;
        root.present().map_err(|e| draw_err(&e))?;
    }
    file.commit().map_err(|e| draw_err(&e))
}

/// A cost matrix as a grey-scale image (dark = cheap) with a warping path
/// over it in red; axes in seconds (`rate` frames per second). Rows are the
/// y axis (`y_label`), columns the x axis (`x_label`). Large matrices are
/// block-averaged to at most 600 cells a side.
#[allow(clippy::too_many_arguments)]
pub fn cost_matrix(
    path: &Path,
    title: &str,
    rows: usize,
    cols: usize,
    values: &[f64],
    rate: f64,
    warping: &[(usize, usize)],
    y_label: &str,
    x_label: &str,
) -> Result<(), ReportError> {
    if rows == 0 || cols == 0 || values.len() != rows * cols || rate.is_nan() || rate <= 0.0 {
        return Err(ReportError::Empty(
            "a cost matrix needs rows × cols values and a frame rate",
        ));
    }
    register_font();
    let draw_err = |e: &dyn std::fmt::Display| ReportError::Draw {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // Drawn under a temporary name (keeping the extension, from which the
    // image format is chosen), then moved into place.
    let file = AtomicFile::create(path).map_err(|e| draw_err(&e))?;
    {
        let (br, bc) = (rows.div_ceil(600), cols.div_ceil(600));
        let (gr, gc) = (rows.div_ceil(br), cols.div_ceil(bc));
        let mut grid = vec![0.0f64; gr * gc];
        let mut count = vec![0u32; gr * gc];
        for i in 0..rows {
            for j in 0..cols {
                let k = (i / br) * gc + j / bc;
                grid[k] += values[i * cols + j];
                count[k] += 1;
            }
        }
        for (g, c) in grid.iter_mut().zip(&count) {
            *g /= (*c).max(1) as f64;
        }
        let (lo, hi) = grid
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let root = BitMapBackend::new(file.tmp_path(), (900, 860)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let (w, h) = (cols as f64 / rate, rows as f64 / rate);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..w, 0.0..h)
            .map_err(|e| draw_err(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("{x_label} (s)"))
            .y_desc(format!("{y_label} (s)"))
            .label_style((FONT_FAMILY, 13))
            .draw()
            .map_err(|e| draw_err(&e))?;
        let (cw, ch) = (bc as f64 / rate, br as f64 / rate);
        chart
            .draw_series((0..gr).flat_map(|i| (0..gc).map(move |j| (i, j))).map(|(i, j)| {
                let v = ((grid[i * gc + j] - lo) / span).clamp(0.0, 1.0);
                let g = (40.0 + 215.0 * v) as u8;
                let (x0, y0) = (j as f64 * cw, i as f64 * ch);
                Rectangle::new(
                    [(x0, y0), ((x0 + cw).min(w), (y0 + ch).min(h))],
                    RGBColor(g, g, g).filled(),
                )
            }))
            .map_err(|e| draw_err(&e))?;
        let centre = 0.5 / rate;
        chart
            .draw_series(LineSeries::new(
                warping
                    .iter()
                    .map(|&(i, j)| (j as f64 / rate + centre, i as f64 / rate + centre)),
                RGBColor(220, 20, 20).stroke_width(2),
            ))
            .map_err(|e| draw_err(&e))?;
        root.present().map_err(|e| draw_err(&e))?;
    }
    file.commit().map_err(|e| draw_err(&e))
}

/// A confusion matrix: rows are true classes, columns predicted ones; each
/// cell shows its count and is shaded by the share of its row (so classes of
/// different sizes compare), the diagonal in blue and errors in red.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    classes: &[String],
    counts: &[Vec<usize>],
) -> Result<(), ReportError> {
    let n = classes.len();
    if n == 0 || counts.len() != n || counts.iter().any(|r| r.len() != n) {
        return Err(ReportError::Empty(
            "a confusion matrix needs n × n counts for n classes",
        ));
    }
    register_font();
    let draw_err = |e: &dyn std::fmt::Display| ReportError::Draw {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // Drawn under a temporary name (keeping the extension, from which the
    // image format is chosen), then moved into place.
    let file = AtomicFile::create(path).map_err(|e| draw_err(&e))?;
    {
        let size = (180 + 70 * n as u32).max(420);
        let root = BitMapBackend::new(file.tmp_path(), (size + 60, size)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 18))
            .margin(12)
            .x_label_area_size(110)
            .y_label_area_size(130)
            .build_cartesian_2d(0.0..n as f64, 0.0..n as f64)
            .map_err(|e| draw_err(&e))?;
        let name = |v: &f64| {
            let i = v.floor() as usize;
            if (v - i as f64 - 0.5).abs() < 1e-6 && i < n {
                classes[i].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * n + 1)
            .y_labels(2 * n + 1)
            .x_label_formatter(&name)
            .y_label_formatter(&|v: &f64| name(&(n as f64 - v)))
            .x_desc("predicted")
            .y_desc("true")
            .x_label_style((FONT_FAMILY, 12).into_font().transform(FontTransform::Rotate90))
            .label_style((FONT_FAMILY, 12))
            .draw()
            .map_err(|e| draw_err(&e))?;
        for (t, row) in counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &c) in row.iter().enumerate() {
                let share = c as f64 / total;
                let fade = |full: u8| (255.0 - (255.0 - full as f64) * share) as u8;
                let colour = if t == p {
                    RGBColor(fade(31), fade(119), fade(180))
                } else {
                    RGBColor(fade(214), fade(39), fade(40))
                };
                let y = (n - 1 - t) as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(p as f64, y), (p as f64 + 1.0, y + 1.0)],
                        colour.filled(),
                    )))
                    .map_err(|e| draw_err(&e))?;
                let text_colour = if share > 0.6 { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        c.to_string(),
                        (p as f64 + 0.42, y + 0.58),
                        (FONT_FAMILY, 14).into_font().color(&text_colour),
                    )))
                    .map_err(|e| draw_err(&e))?;
            }
        }
        root.present().map_err(|e| draw_err(&e))?;
    }
    file.commit().map_err(|e| draw_err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_confusion_matrix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("confusion.png");
        let classes: Vec<String> = ["rock", "waltz", "latin"].iter().map(|s| s.to_string()).collect();
        let counts = vec![vec![8, 1, 1], vec![0, 9, 1], vec![2, 0, 8]];
        confusion_matrix(&p, "GraphSAGE", &classes, &counts).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..4], &[0x89, b'P', b'N', b'G']);
        assert!(confusion_matrix(&p, "x", &classes, &counts[..2]).is_err());
    }

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
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["chart.png"], "drawn in place of a temporary, none left");
        // A directory that does not exist is an error naming the picture.
        let missing = dir.path().join("no/such/dir/chart.png");
        let err = bar_chart(&missing, "x", "y", &cats, &series, 1.0).unwrap_err();
        assert!(err.to_string().contains("no/such/dir/chart.png"), "{err}");
    }

    #[test]
    fn draws_stacked_line_panels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("curve.png");
        let loss: Vec<(f64, f64)> = (0..50).map(|i| (i as f64, 5.0 / (1.0 + i as f64))).collect();
        let hit: Vec<(f64, f64)> = (0..5).map(|i| (i as f64 * 10.0, i as f64 * 20.0)).collect();
        let panels = [
            Panel {
                y_label: "loss".into(),
                series: vec![("train".into(), loss)],
            },
            Panel {
                y_label: "hit rate (%)".into(),
                series: vec![("validation".into(), hit)],
            },
        ];
        line_chart(&p, "training", "step", &panels).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 5_000);
        assert!(line_chart(&p, "x", "y", &[]).is_err());
    }

    #[test]
    fn draws_a_cost_matrix_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("align.png");
        let (n, m) = (50, 80);
        let values: Vec<f64> = (0..n * m)
            .map(|k| ((k / m) as f64 / n as f64 - (k % m) as f64 / m as f64).abs())
            .collect();
        let path: Vec<(usize, usize)> = (0..m).map(|j| (j * n / m, j)).collect();
        cost_matrix(&p, "A vs B", n, m, &values, 5.0, &path, "A", "B").unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 5_000);
        assert!(cost_matrix(&p, "x", n, m, &values[1..], 5.0, &path, "A", "B").is_err());
    }
}
