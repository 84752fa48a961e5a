//! Benchmark reports: a markdown table, a JSON summary and a bar chart per protocol.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::BenchError;
use crate::score::{Cell, Scores};
use crate::spec::Protocol;

/// Everything a report says.
#[derive(Debug, Clone, Serialize)]
pub struct Summary<'a> {
    pub system: &'a str,
    pub benchmark: String,
    pub results: String,
    pub scores: &'a Scores,
}

/// The metric each protocol's chart and overview table show.
fn headline(p: Protocol) -> (&'static str, fn(&Cell) -> f64) {
    match p {
        Protocol::AudioId => ("song top-1 hit rate (%)", |c| c.top1),
        Protocol::SampleId | Protocol::VersionId => ("top-1 hit rate (%)", |c| c.top1),
    }
}

/// Writes `report.md`, `summary.json` and `PROTOCOL.png` into `out`; returns the files.
pub fn write(out: &Path, summary: &Summary) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(out).map_err(|e| BenchError::io(out, e))?;
    let mut written = Vec::new();
    let json = serde_json::to_string_pretty(summary).map_err(|e| BenchError::Format(e.to_string()))?;
    let p = out.join("summary.json");
    sampleid_fsio::atomic_write(&p, json.as_bytes()).map_err(|e| BenchError::io(&p, e))?;
    written.push(p);
    let p = out.join("report.md");
    sampleid_fsio::atomic_write(&p, markdown(summary).as_bytes()).map_err(|e| BenchError::io(&p, e))?;
    written.push(p);
    for protocol in [Protocol::AudioId, Protocol::SampleId, Protocol::VersionId] {
        let cells: Vec<&Cell> = summary
            .scores
            .cells
            .iter()
            .filter(|c| c.protocol == protocol && c.n > 0)
            .collect();
        if cells.is_empty() {
            continue;
        }
        let mut conditions: Vec<String> = cells.iter().map(|c| c.condition.clone()).collect();
        conditions.dedup();
        let mut lengths: Vec<f64> = cells.iter().map(|c| c.length_s).collect();
        lengths.sort_by(f64::total_cmp);
        lengths.dedup();
        let (label, metric) = headline(protocol);
        let series: Vec<(String, Vec<f64>)> = lengths
            .iter()
            .map(|&l| {
                let values = conditions
                    .iter()
                    .map(|cond| {
                        cells
                            .iter()
                            .find(|c| c.condition == *cond && c.length_s == l)
                            .map(|c| metric(c))
                            .unwrap_or(0.0)
                    })
                    .collect();
                (format!("{l} s"), values)
            })
            .collect();
        let p = out.join(format!("{}.png", protocol.name()));
        sampleid_report::bar_chart(
            &p,
            &format!("{} — {}: {label}", summary.system, protocol.name()),
            label,
            &conditions,
            &series,
            100.0,
        )
        .map_err(|e| BenchError::Format(e.to_string()))?;
        written.push(p);
    }
    Ok(written)
}

/// The markdown report.
pub fn markdown(summary: &Summary) -> String {
    let s = summary.scores;
    let mut md = format!(
        "# Benchmark: {}\n\nbenchmark `{}`, results `{}`{}\n",
        summary.system,
        summary.benchmark,
        summary.results,
        if s.missing > 0 {
            format!(
                "; **{} queries missing from the results** (scored as no answer)",
                s.missing
            )
        } else {
            String::new()
        }
    );
    for protocol in [Protocol::AudioId, Protocol::SampleId, Protocol::VersionId] {
        let cells: Vec<&Cell> = s.cells.iter().filter(|c| c.protocol == protocol).collect();
        if cells.is_empty() {
            continue;
        }
        md.push_str(&format!("\n## {}\n\n", protocol.name()));
        if let Some(o) = s.overall.iter().find(|c| c.protocol == protocol) {
            md.push_str(&format!(
                "All queries: {} positive, {} negative. top-1 {:.1} %, top-3 {:.1} %, top-10 {:.1} %, \
                 mAP (AP@20, paper) {:.1} %, mAP (standard) {:.1} %, segment exact {:.1} %, near {:.1} %, \
                 located ±1 s {:.1} % (or at a repetition of the same audio {:.1} %), pitch shift reported {:.1} %, within ±0.5 st {:.1} % and within \
                 ±0.3 st {:.1} %, time ratio within ±2 % {:.1} %, false accepts on negatives {:.1} %.\n\n",
                o.n,
                o.n_negative,
                o.top1,
                o.top3,
                o.top10,
                o.map20_paper,
                o.map,
                o.segment_exact,
                o.segment_near,
                o.located_1s,
                o.located_repeat,
                o.pitch_reported,
                o.pitch_half_st,
                o.pitch_fine,
                o.ratio_ok,
                o.false_accept
            ));
        }
        md.push_str(match protocol {
            Protocol::AudioId => {
                "| condition | length (s) | n | song top-1 | segment exact | segment near | located ±1 s | or at a repetition | neg. | false accept |\n|---|---|---|---|---|---|---|---|---|---|\n"
            }
            Protocol::SampleId | Protocol::VersionId => {
                "| condition | length (s) | n | top-1 | top-3 | top-10 | mAP (AP@20) | mAP | located ±1 s | pitch ±0.5 st | pitch ±0.3 st | ratio ±2 % | neg. | false accept |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            }
        });
        for c in cells {
            md.push_str(&match protocol {
                Protocol::AudioId => format!(
                    "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} |\n",
                    c.condition,
                    c.length_s,
                    c.n,
                    c.top1,
                    c.segment_exact,
                    c.segment_near,
                    c.located_1s,
                    c.located_repeat,
                    c.n_negative,
                    c.false_accept
                ),
                Protocol::SampleId | Protocol::VersionId => format!(
                    "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} |\n",
                    c.condition,
                    c.length_s,
                    c.n,
                    c.top1,
                    c.top3,
                    c.top10,
                    c.map20_paper,
                    c.map,
                    c.located_1s,
                    c.pitch_half_st,
                    c.pitch_fine,
                    c.ratio_ok,
                    c.n_negative,
                    c.false_accept
                ),
            });
        }
    }
    md.push_str(
        "\nHit rates are song-level; ties between answers are broken against the system. AP@20 (paper) divides by \
         the relevant songs found in the top 20 (NeuralSampleID's definition); standard AP divides by all relevant \
         songs. A negative query is made from audio that is not in the library: any answer to it is a false accept. \
         Pitch and ratio columns count positive queries whose top-1 answer is right and reports a pitch shift \
         (time ratio: query / reference duration) within the tolerance; an answer that reports none does not count.\n",
    );
    md
}
