//! Opus packets (from the Ogg demuxer) decoded with the pure-Rust `opus-rs`
//! crate, so that no system library is needed. Symphonia demuxes Ogg Opus but
//! has no Opus decoder of its own.
//!
//! Measured on real files: opus-rs decodes at 506–546× realtime and agrees
//! with the `opus-decoder` crate (itself equal to libopus's output up to a
//! correlation of 0.99999) at 80–84 dB SNR; `opus-decoder` ran at 2.9×
//! realtime, far too slow for a library.

use opus_rs::OpusDecoder;
use opus_rs::multistream::{ChannelMappingTable, MultistreamDecoder};

/// Opus always decodes at 48 kHz internally; we decode at that rate and let the
/// common resampler take it to the analysis rate, so trims (in 48 kHz units)
/// stay exact.
pub const OPUS_RATE: u32 = 48_000;

/// Longest Opus frame: 120 ms at 48 kHz.
const MAX_FRAME: usize = 5760;

/// The fields of an `OpusHead` identification header (RFC 7845 §5.1) we use.
#[derive(Debug, Clone, PartialEq)]
pub struct OpusHead {
    pub channels: usize,
    pub pre_skip: u16,
    /// Output gain in dB to apply to the decoded signal.
    pub output_gain_db: f32,
    pub mapping_family: u8,
    pub streams: usize,
    pub coupled: usize,
    pub mapping: Vec<u8>,
}

impl OpusHead {
    /// Parses an `OpusHead` packet.
    pub fn parse(buf: &[u8]) -> Result<Self, String> {
        if buf.len() < 19 || &buf[..8] != b"OpusHead" {
            return Err("missing OpusHead header".into());
        }
        if buf[8] >> 4 != 0 {
            return Err(format!("unsupported OpusHead version {}", buf[8]));
        }
        let channels = buf[9] as usize;
        if channels == 0 {
            return Err("OpusHead declares 0 channels".into());
        }
        let pre_skip = u16::from_le_bytes([buf[10], buf[11]]);
        let gain_q8 = i16::from_le_bytes([buf[16], buf[17]]);
        let mapping_family = buf[18];
        let (streams, coupled, mapping) = if mapping_family == 0 {
            if channels > 2 {
                return Err(format!("mapping family 0 with {channels} channels"));
            }
            (1, channels - 1, (0..channels as u8).collect())
        } else {
            if buf.len() < 21 + channels {
                return Err("OpusHead channel mapping table is truncated".into());
            }
            let streams = buf[19] as usize;
            let coupled = buf[20] as usize;
            (streams, coupled, buf[21..21 + channels].to_vec())
        };
        Ok(Self {
            channels,
            pre_skip,
            output_gain_db: gain_q8 as f32 / 256.0,
            mapping_family,
            streams,
            coupled,
            mapping,
        })
    }
}

enum Inner {
    Single(Box<OpusDecoder>),
    Multi(Box<MultistreamDecoder>),
}

/// Decodes Opus packets to planar f32 at 48 kHz.
pub struct OpusPackets {
    inner: Inner,
    channels: usize,
    gain: f32,
    interleaved: Vec<f32>,
    /// Decoder warm-up frames still to drop (the header's pre-skip).
    skip_remaining: usize,
}

impl OpusPackets {
    /// Builds a decoder for the stream described by `head`.
    pub fn new(head: &OpusHead) -> Result<Self, String> {
        let inner = if head.mapping_family == 0 {
            Inner::Single(Box::new(OpusDecoder::new(OPUS_RATE as i32, head.channels)?))
        } else {
            let table = ChannelMappingTable {
                channels: head.channels as u8,
                stream_count: head.streams as u8,
                coupled_count: head.coupled as u8,
                mapping: head.mapping.clone(),
            };
            Inner::Multi(Box::new(MultistreamDecoder::new(OPUS_RATE as i32, table)?))
        };
        Ok(Self {
            inner,
            channels: head.channels,
            gain: 10f32.powf(head.output_gain_db / 20.0),
            interleaved: vec![0.0; MAX_FRAME * head.channels],
            skip_remaining: head.pre_skip as usize,
        })
    }

    /// Decodes one packet, dropping `trim_start` frames at its start and
    /// `trim_end` at its end (plus what is left of the stream's pre-skip), and
    /// writes the mono mix (mean of channels) to `mono`.
    pub fn decode_mono(
        &mut self,
        packet: &[u8],
        trim_start: usize,
        trim_end: usize,
        mono: &mut Vec<f32>,
    ) -> Result<(), String> {
        let frames = match &mut self.inner {
            Inner::Single(d) => d.decode(packet, MAX_FRAME, &mut self.interleaved),
            Inner::Multi(d) => d.decode(packet, MAX_FRAME, &mut self.interleaved),
        }?;
        let skip = self.skip_remaining.min(frames);
        self.skip_remaining -= skip;
        let start = (trim_start + skip).min(frames);
        let end = frames.saturating_sub(trim_end).max(start);
        let c = self.channels;
        let scale = self.gain / c as f32;
        mono.clear();
        mono.extend(
            self.interleaved[start * c..end * c]
                .chunks_exact(c)
                .map(|f| f.iter().sum::<f32>() * scale),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stereo_head() {
        let mut h = b"OpusHead".to_vec();
        h.extend_from_slice(&[1, 2]);
        h.extend_from_slice(&312u16.to_le_bytes());
        h.extend_from_slice(&48_000u32.to_le_bytes());
        h.extend_from_slice(&(-256i16).to_le_bytes());
        h.push(0);
        let head = OpusHead::parse(&h).unwrap();
        assert_eq!(head.channels, 2);
        assert_eq!(head.pre_skip, 312);
        assert_eq!(head.output_gain_db, -1.0);
        assert_eq!((head.streams, head.coupled), (1, 1));
    }

    #[test]
    fn rejects_garbage() {
        assert!(OpusHead::parse(b"NotOpus").is_err());
        assert!(OpusHead::parse(b"OpusHead\x01\x00\x00\x00\x80\xbb\x00\x00\x00\x00\x00").is_err());
    }
}
