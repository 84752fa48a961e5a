//! Pair hashes: (anchor bin, bin difference, frame difference) packed in 32 bits.

use sampleid_peaks::Peak;
use serde::{Deserialize, Serialize};

use crate::LandmarkError;

/// Settings of pair landmarks (`[landmarks.pairs]`). Frames and bins are
/// those of the peak stage (4 ms, 7.8 Hz by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairConfig {
    /// Smallest frame difference to a target (16 ms by default).
    pub min_dt: u32,
    /// Largest frame difference to a target (1 s).
    pub max_dt: u32,
    /// Largest |bin difference| to a target (127 bins ≈ 1 kHz; at most 127).
    pub max_df: u32,
    /// Targets per anchor: the nearest in time first (Wang's fan-out).
    pub fan_out: usize,
    /// Frames per hash time unit: peak frames are divided by this before
    /// the difference is taken (8 → 32 ms, audfprint's resolution is 23 ms).
    /// Our 4 ms frames are too fine to hash exactly: noise and reverb move a
    /// peak by a few frames.
    pub time_step: u32,
    /// Bins per hash frequency unit (2 → 15.6 Hz).
    pub bin_step: u32,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            min_dt: 4,
            max_dt: 250,
            max_df: 127,
            fan_out: 5,
            time_step: 8,
            bin_step: 2,
        }
    }
}

impl PairConfig {
    /// Checks the settings against what a hash can hold.
    pub fn validate(&self) -> Result<(), LandmarkError> {
        if self.min_dt == 0 || self.min_dt > self.max_dt || self.max_dt >= 1 << 14 {
            return Err(LandmarkError::InvalidConfig(format!(
                "need 0 < min_dt ≤ max_dt < 16384 frames (got {} and {})",
                self.min_dt, self.max_dt
            )));
        }
        if self.max_df > 127 || self.fan_out == 0 {
            return Err(LandmarkError::InvalidConfig(
                "max_df must be at most 127 bins and fan_out at least 1".into(),
            ));
        }
        if !(1..=64).contains(&self.time_step) || !(1..=16).contains(&self.bin_step) {
            return Err(LandmarkError::InvalidConfig(
                "time_step must be 1–64 frames and bin_step 1–16 bins".into(),
            ));
        }
        Ok(())
    }
}

/// A pair landmark: its hash (in the quantised units of [`PairConfig`]) and
/// the anchor's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PairHash {
    /// bits 22–31: anchor bin (< 1024); 14–21: bin difference + 128; 0–13:
    /// frame difference; bins and frames in hash units (`bin_step`, `time_step`).
    pub hash: u32,
    /// The anchor's frame.
    pub frame: u32,
}

impl PairHash {
    /// Packs a pair (anchor bin < 1024, |df| ≤ 127, dt < 16384).
    pub fn pack(bin: u32, df: i32, dt: u32) -> u32 {
        debug_assert!(bin < 1024 && df.abs() <= 127 && dt < 1 << 14);
        (bin << 22) | (((df + 128) as u32) << 14) | dt
    }

    /// (anchor bin, bin difference, frame difference) of a hash.
    pub fn unpack(hash: u32) -> (u32, i32, u32) {
        (hash >> 22, ((hash >> 14) & 0xff) as i32 - 128, hash & 0x3fff)
    }
}

/// The pair landmarks of peaks in frame order; anchors above hash bin 1023
/// are skipped. Targets are chosen on the peaks' own frames and bins; the
/// hash holds them in the quantised units.
pub fn pairs(peaks: &[Peak], cfg: &PairConfig) -> Vec<PairHash> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, a) in peaks.iter().enumerate() {
        if a.bin / cfg.bin_step >= 1024 {
            continue;
        }
        // Targets lie in (a.frame + min_dt ..= a.frame + max_dt); peaks are in frame order.
        while start < peaks.len() && peaks[start].frame < a.frame + cfg.min_dt {
            start += 1;
        }
        let mut taken = 0;
        for b in peaks[start.max(i + 1)..].iter() {
            let dt = b.frame - a.frame;
            if dt > cfg.max_dt || taken == cfg.fan_out {
                break;
            }
            let df = b.bin as i32 - a.bin as i32;
            if df.unsigned_abs() > cfg.max_df {
                continue;
            }
            let (qb, qt) = (cfg.bin_step as i32, cfg.time_step);
            out.push(PairHash {
                hash: PairHash::pack(
                    a.bin / cfg.bin_step,
                    b.bin as i32 / qb - a.bin as i32 / qb,
                    b.frame / qt - a.frame / qt,
                ),
                frame: a.frame,
            });
            taken += 1;
        }
    }
    out
}
