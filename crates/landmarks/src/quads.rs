//! Quads: four peaks hashed by their geometry, invariant to shifts and to
//! independent scaling of the time and frequency axes.

use sampleid_peaks::Peak;
use serde::{Deserialize, Serialize};

use crate::LandmarkError;

/// Settings of quad landmarks (`[landmarks.quads]`), in peak frames (4 ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuadConfig {
    /// B lies at least this many frames after A (reference: 0.9 s).
    pub window_start: u32,
    /// … and at most this many (reference: 1.7 s; the paper's window of
    /// width 0.8 s centred 1.3 s after A).
    pub window_end: u32,
    /// B candidates per root, the strongest in the window first.
    pub b_per_root: usize,
    /// Peaks of the box (the strongest) whose pairs give C and D: 2 makes
    /// one quad per (A, B) (the reference side); more make every pair of the
    /// strongest few (the query side, where extra peaks of the denser query
    /// extraction may outrank the reference's C and D).
    pub cd_per_box: usize,
    /// Quads kept per second of audio, the strongest first (reference: 9);
    /// 0 keeps every quad (the query side).
    pub per_second: usize,
    /// Peak frames per second (to cut the audio into seconds).
    pub frame_rate: f64,
}

/// The query side: the only side a configuration file sets (`[landmarks]
/// query_*`; a library's stored side is fixed by its landmark version), so
/// that a partial table keeps the query side's other values.
impl Default for QuadConfig {
    fn default() -> Self {
        Self::query()
    }
}

impl QuadConfig {
    /// The reference side ([`crate::STORED_VERSION`]): window 0.9–1.7 s, 6
    /// B per root, at most 18 quads per second. Twice the quads of
    /// [`QuadConfig::reference_v2`] (about 14 per second instead of 7; 1.46
    /// instead of 0.98 MB per hour with the peaks): more of them survive a
    /// pitch shift or a time stretch. Measured on the validation benchmarks
    /// (landmark stage, kappa 0.25): 317 of 522 clips found instead of 299,
    /// every one of the 18 a sample-ID clip, no unknown clip accepted with
    /// either (`docs/landmarks.md`).
    pub fn reference() -> Self {
        Self {
            b_per_root: 6,
            per_second: 18,
            ..Self::reference_v2()
        }
    }

    /// The reference side of [`crate::STORED_VERSION_V2`] libraries:
    /// window 0.9–1.7 s, 3 B per root, at most 9 quads per second.
    pub fn reference_v2() -> Self {
        Self {
            window_start: 225,
            window_end: 425,
            b_per_root: 3,
            cd_per_box: 2,
            per_second: 9,
            frame_rate: 250.0,
        }
    }

    /// The query side: the window widened to the time scales searched,
    /// 0.65–1.55 (225 · 0.65 → 145 frames, 425 · 1.55 → 660; the paper's
    /// ε = 0.31 gives 172–616; we cover the tempo 0.7–1.5 users ask for),
    /// 20 B per root and every pair of the 5 strongest box peaks, every quad
    /// kept.
    pub fn query() -> Self {
        Self {
            window_start: 145,
            window_end: 660,
            b_per_root: 20,
            cd_per_box: 5,
            per_second: 0,
            frame_rate: 250.0,
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), LandmarkError> {
        if self.window_start == 0 || self.window_start > self.window_end || self.b_per_root == 0 {
            return Err(LandmarkError::InvalidConfig(
                "need 0 < window_start ≤ window_end and b_per_root ≥ 1".into(),
            ));
        }
        if !(2..=16).contains(&self.cd_per_box) {
            return Err(LandmarkError::InvalidConfig("cd_per_box must be 2–16".into()));
        }
        if !(self.frame_rate.is_finite() && self.frame_rate > 0.0) {
            return Err(LandmarkError::InvalidConfig("frame_rate must be positive".into()));
        }
        Ok(())
    }
}

/// A quad: its hash and the two peaks that define its coordinates (what
/// the time and frequency scale of a match are estimated from).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quad {
    /// (C'x, C'y, D'x, D'y) in [0, 1]⁴: C and D with A at (0, 0) and B at (1, 1).
    pub hash: [f32; 4],
    /// Root A: (frame, bin).
    pub a: (u32, u32),
    /// Far peak B: (frame, bin).
    pub b: (u32, u32),
    /// The weaker magnitude of C and D (the paper's quad strength).
    pub strength: f32,
}

/// The hash of A, B, C, D given as (time, frequency): C and D mapped by the
/// affine map of each axis that takes A to 0 and B to 1.
pub fn quad_hash(a: (f64, f64), b: (f64, f64), c: (f64, f64), d: (f64, f64)) -> [f32; 4] {
    let (sx, sy) = (b.0 - a.0, b.1 - a.1);
    [
        ((c.0 - a.0) / sx) as f32,
        ((c.1 - a.1) / sy) as f32,
        ((d.0 - a.0) / sx) as f32,
        ((d.1 - a.1) / sy) as f32,
    ]
}

/// The quads of peaks in frame order, ordered by their root's frame.
///
/// For each root A, the strongest peaks B in the grouping window with a
/// higher bin than A; for each, C and D are pairs of the `cd_per_box`
/// strongest peaks inside the box A < x ≤ B (time), A < y ≤ B (frequency),
/// B excluded, with C before D (time, then bin).
pub fn quads(peaks: &[Peak], cfg: &QuadConfig) -> Vec<Quad> {
    let mut out = Vec::new();
    let mut window: Vec<&Peak> = Vec::new();
    let mut inside: Vec<&Peak> = Vec::new();
    for (i, a) in peaks.iter().enumerate() {
        let lo = peaks.partition_point(|p| p.frame < a.frame + cfg.window_start);
        let hi = peaks.partition_point(|p| p.frame <= a.frame + cfg.window_end);
        window.clear();
        window.extend(peaks[lo.max(i + 1)..hi.max(lo)].iter().filter(|b| b.bin > a.bin));
        window.sort_by(|x, y| y.magnitude.total_cmp(&x.magnitude).then(x.frame.cmp(&y.frame)));
        for b in window.iter().take(cfg.b_per_root) {
            let end = peaks.partition_point(|p| p.frame <= b.frame);
            inside.clear();
            inside.extend(
                peaks[i + 1..end]
                    .iter()
                    .filter(|p| p.frame > a.frame && p.bin > a.bin && p.bin <= b.bin && !std::ptr::eq(*p, *b)),
            );
            if inside.len() < 2 {
                continue;
            }
            inside.sort_by(|x, y| y.magnitude.total_cmp(&x.magnitude).then(x.frame.cmp(&y.frame)));
            inside.truncate(cfg.cd_per_box);
            let at = |p: &Peak| (p.frame as f64, p.bin as f64);
            for (j, &p) in inside.iter().enumerate() {
                for &q in &inside[j + 1..] {
                    let (c, d) = if (q.frame, q.bin) < (p.frame, p.bin) {
                        (q, p)
                    } else {
                        (p, q)
                    };
                    out.push(Quad {
                        hash: quad_hash(at(a), at(b), at(c), at(d)),
                        a: (a.frame, a.bin),
                        b: (b.frame, b.bin),
                        strength: c.magnitude.min(d.magnitude),
                    });
                }
            }
        }
    }
    if cfg.per_second > 0 {
        keep_strongest_per_second(&mut out, cfg);
    }
    out
}

/// Keeps the `per_second` strongest quads of each second (by root time),
/// in root order.
fn keep_strongest_per_second(quads: &mut Vec<Quad>, cfg: &QuadConfig) {
    let second = |q: &Quad| (q.a.0 as f64 / cfg.frame_rate).floor() as u64;
    let mut kept = Vec::with_capacity(quads.len());
    let mut start = 0;
    while start < quads.len() {
        let s = second(&quads[start]);
        let end = start + quads[start..].iter().take_while(|q| second(q) == s).count();
        let mut block: Vec<(usize, Quad)> = quads[start..end].iter().copied().enumerate().collect();
        block.sort_by(|x, y| y.1.strength.total_cmp(&x.1.strength).then(x.0.cmp(&y.0)));
        block.truncate(cfg.per_second);
        block.sort_by_key(|(k, _)| *k);
        kept.extend(block.into_iter().map(|(_, q)| q));
        start = end;
    }
    *quads = kept;
}
