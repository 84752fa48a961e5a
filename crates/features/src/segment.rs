//! Cutting the log-mel stream into the overlapping, normalised segments the
//! encoder consumes: 128 frames every 16 frames, laid out `[mel][time]`.

use std::collections::VecDeque;

use crate::FeatureError;
use crate::config::{FrontendConfig, SegmentNorm};
use crate::mel::LogMelStream;

/// One encoder input: `n_mels × segment_frames` values, mel-major (time on the
/// last axis), normalised as the config says.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// 0-based segment number in the stream.
    pub index: usize,
    /// First frame of the segment.
    pub start_frame: usize,
    /// Start time in seconds (`start_frame · hop / sample_rate`).
    pub start_s: f64,
    /// `n_mels * segment_frames` values, `data[m * segment_frames + t]`.
    pub data: Vec<f32>,
}

/// Min–max normalisation to [0, 1] in place. A constant patch (digital
/// silence, DC) has no range and becomes all zeros: the published code divides
/// by zero there and produces NaN.
pub fn min_max_normalise(x: &mut [f32]) {
    let (lo, hi) = x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let range = hi - lo;
    if !crate::positive(range) {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let inv = 1.0 / range;
    x.iter_mut().for_each(|v| *v = (*v - lo) * inv);
}

/// Streaming segmenter: audio samples in, normalised segments out.
pub struct SegmentStream {
    mel: LogMelStream,
    cutter: Cutter,
}

impl SegmentStream {
    /// A new segmenter; inputs shorter than `min_segment_samples` are zero-padded.
    pub fn new(cfg: &FrontendConfig) -> Result<Self, FeatureError> {
        Ok(Self {
            mel: LogMelStream::new(cfg, cfg.min_segment_samples)?,
            cutter: Cutter {
                window: VecDeque::with_capacity(cfg.segment_frames),
                cfg: cfg.clone(),
                frames_seen: 0,
                emitted: 0,
            },
        })
    }

    /// Segments emitted so far.
    pub fn segments(&self) -> usize {
        self.cutter.emitted
    }

    /// Feeds samples; `on_segment` receives each finished segment.
    pub fn push(&mut self, samples: &[f32], on_segment: &mut dyn FnMut(Segment)) {
        let cutter = &mut self.cutter;
        self.mel.push(samples, &mut |frame| cutter.accept(frame, on_segment));
    }

    /// Ends the input and emits the last segments.
    pub fn finish(&mut self, on_segment: &mut dyn FnMut(Segment)) {
        let cutter = &mut self.cutter;
        self.mel.finish(&mut |frame| cutter.accept(frame, on_segment));
    }
}

/// Keeps the last `segment_frames` log-mel frames and cuts a segment every `segment_hop`.
struct Cutter {
    cfg: FrontendConfig,
    window: VecDeque<Vec<f32>>,
    frames_seen: usize,
    emitted: usize,
}

impl Cutter {
    fn accept(&mut self, frame: &[f32], on_segment: &mut dyn FnMut(Segment)) {
        let cfg = &self.cfg;
        let recycled = if self.window.len() == cfg.segment_frames {
            self.window.pop_front()
        } else {
            None
        };
        let mut f = recycled.unwrap_or_default();
        f.clear();
        f.extend_from_slice(frame);
        self.window.push_back(f);
        self.frames_seen += 1;
        if self.frames_seen < cfg.segment_frames
            || !(self.frames_seen - cfg.segment_frames).is_multiple_of(cfg.segment_hop)
        {
            return;
        }
        let t_len = cfg.segment_frames;
        let mut data = vec![0.0f32; cfg.n_mels * t_len];
        for (t, frame) in self.window.iter().enumerate() {
            for (m, v) in frame.iter().enumerate() {
                data[m * t_len + t] = *v;
            }
        }
        if cfg.segment_norm == SegmentNorm::MinMax {
            min_max_normalise(&mut data);
        }
        let start_frame = self.frames_seen - cfg.segment_frames;
        on_segment(Segment {
            index: self.emitted,
            start_frame,
            start_s: start_frame as f64 * cfg.hop_s(),
            data,
        });
        self.emitted += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_input_normalises_to_zeros_not_nan() {
        let mut x = vec![-100.0f32; 16];
        min_max_normalise(&mut x);
        assert!(x.iter().all(|&v| v == 0.0));
        let mut y = vec![1.0, 3.0, 2.0];
        min_max_normalise(&mut y);
        assert_eq!(y, vec![0.0, 1.0, 0.5]);
    }
}
