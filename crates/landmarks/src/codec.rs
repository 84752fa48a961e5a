//! The compact row formats a library stores landmarks in: 8 bytes per peak
//! and 20 per quad, little-endian. Peaks are kept for verification; pair
//! hashes are derived from them when a library opens, so only the peaks and
//! quads take room (about 0.9 MB per hour with the reference settings).

use half::f16;
use sampleid_peaks::Peak;

use crate::{LandmarkError, Quad};

/// Bytes of one stored peak: frame u32, bin u16, magnitude f16.
pub const PEAK_BYTES: usize = 8;
/// Bytes of one stored quad: hash 4 × u16 (value · 65535), A frame u32,
/// A bin u16, B − A frames u16, B bin u16, strength f16.
pub const QUAD_BYTES: usize = 20;

/// Peaks as rows of [`PEAK_BYTES`]; bins must be below 65536.
pub fn encode_peaks(peaks: &[Peak]) -> Vec<u8> {
    let mut out = Vec::with_capacity(peaks.len() * PEAK_BYTES);
    for p in peaks {
        out.extend_from_slice(&p.frame.to_le_bytes());
        out.extend_from_slice(&(p.bin.min(u16::MAX as u32) as u16).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(p.magnitude).to_le_bytes());
    }
    out
}

/// Inverse of [`encode_peaks`].
pub fn decode_peaks(bytes: &[u8]) -> Result<Vec<Peak>, LandmarkError> {
    if !bytes.len().is_multiple_of(PEAK_BYTES) {
        return Err(LandmarkError::Format(format!(
            "{} bytes are not whole peaks of {PEAK_BYTES}",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(PEAK_BYTES)
        .map(|c| Peak {
            frame: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            bin: u16::from_le_bytes([c[4], c[5]]) as u32,
            magnitude: f16::from_le_bytes([c[6], c[7]]).to_f32(),
        })
        .collect())
}

/// Quads as rows of [`QUAD_BYTES`]. The hash is quantised to 1/65535 (far
/// below the 0.01 search radius); B − A must fit 16 bits (it is at most the
/// grouping window's end).
pub fn encode_quads(quads: &[Quad]) -> Vec<u8> {
    let mut out = Vec::with_capacity(quads.len() * QUAD_BYTES);
    for q in quads {
        for h in q.hash {
            out.extend_from_slice(&((h.clamp(0.0, 1.0) * 65535.0).round() as u16).to_le_bytes());
        }
        out.extend_from_slice(&q.a.0.to_le_bytes());
        out.extend_from_slice(&(q.a.1.min(u16::MAX as u32) as u16).to_le_bytes());
        out.extend_from_slice(&(q.b.0.saturating_sub(q.a.0).min(u16::MAX as u32) as u16).to_le_bytes());
        out.extend_from_slice(&(q.b.1.min(u16::MAX as u32) as u16).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(q.strength).to_le_bytes());
    }
    out
}

/// Inverse of [`encode_quads`].
pub fn decode_quads(bytes: &[u8]) -> Result<Vec<Quad>, LandmarkError> {
    if !bytes.len().is_multiple_of(QUAD_BYTES) {
        return Err(LandmarkError::Format(format!(
            "{} bytes are not whole quads of {QUAD_BYTES}",
            bytes.len()
        )));
    }
    let u16_at = |c: &[u8], i: usize| u16::from_le_bytes([c[i], c[i + 1]]);
    Ok(bytes
        .chunks_exact(QUAD_BYTES)
        .map(|c| {
            let a_frame = u32::from_le_bytes([c[8], c[9], c[10], c[11]]);
            Quad {
                hash: [0, 2, 4, 6].map(|i| u16_at(c, i) as f32 / 65535.0),
                a: (a_frame, u16_at(c, 12) as u32),
                b: (a_frame + u16_at(c, 14) as u32, u16_at(c, 16) as u32),
                strength: f16::from_le_bytes([c[18], c[19]]).to_f32(),
            }
        })
        .collect())
}
