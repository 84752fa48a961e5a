//! The streaming decoder: container demuxing and decoding with symphonia (plus
//! the pure-Rust Opus path), downmix to mono and resampling to the analysis rate,
//! one block at a time so that memory stays bounded for inputs of any length.

use std::fs::File;
use std::io::{Cursor, ErrorKind, Seek, SeekFrom};
use std::path::Path;

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

use crate::opus::{OPUS_RATE, OpusHead, OpusPackets};
use crate::resample::StreamResampler;
use crate::{AudioConfig, AudioError, SourceInfo};

/// A run of this many undecodable packets in a row means the stream is garbage.
const MAX_CONSECUTIVE_BAD_PACKETS: u32 = 64;

/// Decoded samples are clamped to ±this (+60 dBFS): float PCM may exceed full
/// scale a little, never by orders of magnitude, and the spectra downstream
/// must stay finite.
const MAX_ABS_SAMPLE: f32 = 1000.0;

/// More than this fraction of non-finite samples (NaN/∞ in float PCM) means
/// the data is damaged, not audio.
const MAX_NON_FINITE_FRACTION: f64 = 0.01;

/// A forward jump in packet timestamps longer than this is missing data.
const MAX_GAP_S: f64 = 0.5;

enum Packets {
    Symphonia {
        decoder: Box<dyn AudioDecoder>,
        planar: Vec<Vec<f32>>,
    },
    Opus(OpusPackets),
}

/// A decoded audio input, read block by block as mono samples at
/// [`AudioConfig::sample_rate`].
///
/// ```no_run
/// # use sampleid_audio::{AudioConfig, AudioStream};
/// let mut stream = AudioStream::open("song.ogg".as_ref(), &AudioConfig::default())?;
/// while let Some(block) = stream.next_block()? {
///     // feed `block` to the front end
/// #   let _ = block;
/// }
/// # Ok::<(), sampleid_audio::AudioError>(())
/// ```
pub struct AudioStream {
    name: String,
    reader: Box<dyn FormatReader>,
    track_id: u32,
    packets: Packets,
    info: SourceInfo,
    cfg: AudioConfig,
    resampler: Option<StreamResampler>,
    /// Rate of the samples currently coming out of the decoder.
    current_rate: Option<u32>,
    mono: Vec<f32>,
    out: Vec<f32>,
    /// The packet read ahead (see [`AudioStream::step`]).
    lookahead: Option<Packet>,
    /// Still in the leading packets whose start trims are real.
    at_start: bool,
    /// Container trims ignored in mid-stream (in track frames).
    ignored_trim_frames: u64,
    /// Expected timestamp of the next packet, in the track's time base.
    next_pts: Option<i64>,
    /// The track's time base as (numerator, denominator) seconds.
    time_base: Option<(u32, u32)>,
    /// Encoder priming still to drop from the start, in seconds (MP4 edit list).
    priming_s: f64,
    /// How an Ogg file ends (whole or cut inside a page), for an Ogg input.
    ogg_tail: Option<crate::ogg::Tail>,
    /// Frames decoded at the source rate (for truncation checks).
    source_frames: u64,
    source_seconds: f64,
    emitted: u64,
    good_packets: u64,
    bad_packets: u64,
    /// NaN/∞ samples replaced by silence.
    non_finite: u64,
    consecutive_bad: u32,
    done: bool,
}

impl AudioStream {
    /// Opens a file. The extension is only a hint; the content decides the format.
    pub fn open(path: &Path, cfg: &AudioConfig) -> Result<Self, AudioError> {
        let name = path.display().to_string();
        let io_err = |err| AudioError::Io {
            name: name.clone(),
            err,
        };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(std::io::Error::new(ErrorKind::IsADirectory, "is a directory")));
        }
        if meta.len() == 0 {
            return Err(AudioError::Empty { name });
        }
        let file = File::open(path).map_err(io_err)?;
        let ext = path.extension().and_then(|e| e.to_str());
        Self::from_source(Box::new(file), &name, ext, cfg)
    }

    /// Decodes audio held in memory (an upload, say). `name` is used in errors,
    /// `extension` is an optional format hint.
    pub fn from_bytes(
        bytes: Vec<u8>,
        name: &str,
        extension: Option<&str>,
        cfg: &AudioConfig,
    ) -> Result<Self, AudioError> {
        if bytes.is_empty() {
            return Err(AudioError::Empty { name: name.to_string() });
        }
        Self::from_source(Box::new(Cursor::new(bytes)), name, extension, cfg)
    }

    fn from_source(
        mut source: Box<dyn MediaSource>,
        name: &str,
        extension: Option<&str>,
        cfg: &AudioConfig,
    ) -> Result<Self, AudioError> {
        let name = name.to_string();
        if cfg.sample_rate == 0 {
            return Err(AudioError::InvalidParameters {
                name,
                reason: "target sample rate is 0".into(),
            });
        }
        let magic = sniff_magic(&mut source);
        let priming_s = crate::mp4::priming_seconds(&mut source).unwrap_or(0.0);
        let ogg_tail = if magic == Some("ogg") {
            crate::ogg::tail(&mut source)
        } else {
            None
        };
        if magic == Some("wav")
            && let Some(size) = crate::riff::repair(&mut source)
        {
            tracing::warn!(input = %name, riff_size = size, "the RIFF size undercounts its chunks; reading them whole");
            source = Box::new(crate::riff::Patched::new(source, size));
        }
        source.seek(SeekFrom::Start(0)).map_err(|err| AudioError::Io {
            name: name.clone(),
            err,
        })?;
        let mss = MediaSourceStream::new(source, Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        let reader = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| probe_error(&name, e, magic))?;
        let container = reader.format_info().short_name.to_string();
        let (track_id, packets, mut info, time_base) = open_track(&name, reader.as_ref())?;
        info.container = container;
        if let Some(d) = info.duration_s.as_mut() {
            *d = (*d - priming_s).max(0.0);
        }
        Ok(Self {
            name,
            reader,
            track_id,
            packets,
            info,
            cfg: cfg.clone(),
            resampler: None,
            current_rate: None,
            mono: Vec::new(),
            out: Vec::new(),
            priming_s,
            ogg_tail,
            lookahead: None,
            at_start: true,
            ignored_trim_frames: 0,
            next_pts: None,
            time_base,
            source_frames: 0,
            source_seconds: 0.0,
            emitted: 0,
            good_packets: 0,
            bad_packets: 0,
            non_finite: 0,
            consecutive_bad: 0,
            done: false,
        })
    }

    /// What the input declares about itself.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// The input name used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds of audio emitted so far (at the target rate).
    pub fn position_s(&self) -> f64 {
        self.emitted as f64 / self.cfg.sample_rate as f64
    }

    /// Packets that failed to decode and were skipped so far.
    pub fn skipped_packets(&self) -> u64 {
        self.bad_packets
    }

    /// The next block of mono samples at the target rate, or `None` at the end.
    /// Blocks hold about [`AudioConfig::block_samples`] samples (the last may be shorter).
    pub fn next_block(&mut self) -> Result<Option<&[f32]>, AudioError> {
        self.out.clear();
        while self.out.len() < self.cfg.block_samples && !self.done {
            self.step()?;
        }
        self.emitted += self.out.len() as u64;
        if let Some(limit) = self.cfg.max_duration_s
            && self.position_s() > limit
        {
            return Err(AudioError::TooLong {
                name: self.name.clone(),
                limit_s: limit,
            });
        }
        if self.out.is_empty() {
            Ok(None)
        } else {
            Ok(Some(&self.out))
        }
    }

    /// Reads one packet and decodes the one before it (or finishes the stream).
    ///
    /// One packet is held back so that we know whether a packet is the last
    /// of its stream: demuxers derive start/end trims from container
    /// timestamps, which are only meaningful at the start (encoder delay) and
    /// at the end (padding). ffmpeg writes Ogg granule positions that follow
    /// its input timestamps (after seeking or concatenating), and symphonia
    /// then trims real audio in the middle of the stream: 6.7 s over a 3 h
    /// file here. Trims on packets that are neither at the start nor last are
    /// therefore ignored.
    fn step(&mut self) -> Result<(), AudioError> {
        match self.reader.next_packet() {
            Ok(Some(packet)) => {
                if packet.track_id == self.track_id
                    && let Some(prev) = self.lookahead.replace(packet)
                {
                    self.decode_held(prev, false)?;
                }
                Ok(())
            }
            Ok(None) => {
                self.drain_lookahead()?;
                self.finish()
            }
            Err(SymError::ResetRequired) => {
                // A chained stream (e.g. concatenated Ogg files): a new track list.
                self.drain_lookahead()?;
                let (track_id, packets, _, time_base) = open_track(&self.name, self.reader.as_ref())?;
                self.track_id = track_id;
                self.packets = packets;
                self.time_base = time_base;
                self.next_pts = None;
                self.at_start = true;
                Ok(())
            }
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                self.drain_lookahead()?;
                self.on_unexpected_end()
            }
            Err(SymError::IoError(err)) => Err(AudioError::Io {
                name: self.name.clone(),
                err,
            }),
            Err(SymError::DecodeError(msg)) => self.bad_packet(msg),
            Err(e) => Err(AudioError::Corrupt {
                name: self.name.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn drain_lookahead(&mut self) -> Result<(), AudioError> {
        match self.lookahead.take() {
            Some(p) => self.decode_held(p, true),
            None => Ok(()),
        }
    }

    /// Decodes a held-back packet, keeping its trims only where they can be real.
    fn decode_held(&mut self, mut packet: Packet, last: bool) -> Result<(), AudioError> {
        if packet.trim_start.get() == 0 {
            self.at_start = false;
        } else if !self.at_start {
            self.ignored_trim_frames += packet.trim_start.get();
            packet.trim_start = Default::default();
        }
        if !last && packet.trim_end.get() > 0 {
            self.ignored_trim_frames += packet.trim_end.get();
            packet.trim_end = Default::default();
        }
        self.decode_packet(&packet)
    }

    /// Damaged pages or frames that a demuxer skips leave a jump in the packet
    /// timestamps. A short one is tolerated; a long one would shift every later
    /// time, so it is reported as corruption.
    fn check_continuity(&mut self, packet: &Packet) -> Result<(), AudioError> {
        let pts = packet.pts.get();
        if let (Some(expected), Some((numer, denom))) = (self.next_pts, self.time_base) {
            let gap_s = (pts - expected) as f64 * numer as f64 / denom as f64;
            if gap_s > MAX_GAP_S {
                return Err(AudioError::Corrupt {
                    name: self.name.clone(),
                    reason: format!(
                        "{gap_s:.2} s of the stream are missing after {:.2} s (damaged or missing data)",
                        self.source_seconds
                    ),
                });
            }
        }
        self.next_pts = Some(pts.saturating_add(packet.dur.get() as i64));
        Ok(())
    }

    fn decode_packet(&mut self, packet: &Packet) -> Result<(), AudioError> {
        self.check_continuity(packet)?;
        // Decoders are not guaranteed panic-free on malformed data: a panic is
        // reported as a corrupt input rather than taking the process down.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.decode_packet_inner(packet)));
        match decoded {
            Ok(r) => r,
            Err(_) => Err(AudioError::Corrupt {
                name: self.name.clone(),
                reason: "the decoder failed on malformed data".into(),
            }),
        }
    }

    fn decode_packet_inner(&mut self, packet: &Packet) -> Result<(), AudioError> {
        let rate = match &mut self.packets {
            Packets::Symphonia { decoder, planar } => match decoder.decode(packet) {
                Ok(buf) => {
                    let rate = buf.spec().rate();
                    buf.copy_to_vecs_planar::<f32>(planar);
                    let n = buf.frames();
                    let c = planar.len().max(1);
                    self.mono.clear();
                    self.mono.resize(n, 0.0);
                    for ch in planar.iter() {
                        for (m, s) in self.mono.iter_mut().zip(&ch[..n]) {
                            *m += *s;
                        }
                    }
                    if c > 1 {
                        let inv = 1.0 / c as f32;
                        self.mono.iter_mut().for_each(|m| *m *= inv);
                    }
                    rate
                }
                Err(SymError::DecodeError(msg)) => return self.bad_packet(msg),
                Err(SymError::IoError(_)) => return self.bad_packet("packet read error"),
                Err(e) => {
                    return Err(AudioError::Corrupt {
                        name: self.name.clone(),
                        reason: e.to_string(),
                    });
                }
            },
            Packets::Opus(dec) => {
                let trim_start = packet.trim_start.get() as usize;
                let trim_end = packet.trim_end.get() as usize;
                if let Err(msg) = dec.decode_mono(&packet.data, trim_start, trim_end, &mut self.mono) {
                    tracing::debug!(input = %self.name, %msg, "bad opus packet");
                    return self.bad_packet("invalid Opus packet");
                }
                OPUS_RATE
            }
        };
        self.consecutive_bad = 0;
        self.good_packets += 1;
        if rate == 0 {
            return Err(AudioError::InvalidParameters {
                name: self.name.clone(),
                reason: "decoded audio has a sample rate of 0".into(),
            });
        }
        if self.priming_s > 0.0 {
            let skip = ((self.priming_s * rate as f64).round() as usize).min(self.mono.len());
            self.mono.drain(..skip);
            self.priming_s -= skip as f64 / rate as f64;
            if self.priming_s < 0.5 / rate as f64 {
                self.priming_s = 0.0;
            }
        }
        for s in self.mono.iter_mut() {
            if !s.is_finite() {
                *s = 0.0;
                self.non_finite += 1;
            } else {
                *s = s.clamp(-MAX_ABS_SAMPLE, MAX_ABS_SAMPLE);
            }
        }
        self.source_frames += self.mono.len() as u64;
        self.source_seconds += self.mono.len() as f64 / rate as f64;
        self.feed(rate)
    }

    /// Pushes `self.mono` (at `rate`) through the resampler into `self.out`.
    fn feed(&mut self, rate: u32) -> Result<(), AudioError> {
        if self.current_rate != Some(rate) {
            self.flush_resampler()?;
            self.current_rate = Some(rate);
            if rate != self.cfg.sample_rate {
                let r = StreamResampler::new(self.cfg.resampler, rate, self.cfg.sample_rate, self.cfg.resample_chunk)
                    .map_err(|e| AudioError::InvalidParameters {
                    name: self.name.clone(),
                    reason: e.to_string(),
                })?;
                self.resampler = Some(r);
            }
        }
        match &mut self.resampler {
            Some(r) => r.push(&self.mono, &mut self.out).map_err(|e| AudioError::Corrupt {
                name: self.name.clone(),
                reason: e.to_string(),
            }),
            None => {
                self.out.extend_from_slice(&self.mono);
                Ok(())
            }
        }
    }

    fn flush_resampler(&mut self) -> Result<(), AudioError> {
        if let Some(mut r) = self.resampler.take() {
            r.finish(&mut self.out).map_err(|e| AudioError::Corrupt {
                name: self.name.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn bad_packet(&mut self, msg: &str) -> Result<(), AudioError> {
        self.bad_packets += 1;
        self.consecutive_bad += 1;
        tracing::debug!(input = %self.name, msg, "skipping undecodable packet");
        if self.consecutive_bad >= MAX_CONSECUTIVE_BAD_PACKETS {
            return Err(AudioError::Corrupt {
                name: self.name.clone(),
                reason: format!("{} undecodable packets in a row ({msg})", self.consecutive_bad),
            });
        }
        Ok(())
    }

    /// The stream ended in the middle of a packet or page.
    fn on_unexpected_end(&mut self) -> Result<(), AudioError> {
        if let Some(tail) = self.ogg_tail {
            return self.on_ogg_end(tail);
        }
        let declared = self.info.duration_s;
        // A stream that already delivered all it declared is complete; only trailing bytes are missing.
        if let Some(expected) = declared
            && self.source_seconds + 0.05 >= expected
        {
            tracing::warn!(input = %self.name, "stream ends with a partial packet; ignoring it");
            return self.finish();
        }
        Err(AudioError::Truncated {
            name: self.name.clone(),
            decoded_s: self.source_seconds,
            expected_s: declared,
        })
    }

    /// An Ogg stream that ends without its end-of-stream page: complete when
    /// the file ends after a whole page and all that page's granule position
    /// promises was decoded (a warning), truncated when it stops inside a page.
    fn on_ogg_end(&mut self, tail: crate::ogg::Tail) -> Result<(), AudioError> {
        let rate = self.info.sample_rate.unwrap_or(0).max(1) as f64;
        match tail {
            crate::ogg::Tail::Whole { granule, end_of_stream } => {
                let promised = granule as f64 / rate;
                if self.source_seconds + 0.5 < promised && self.source_seconds < 0.98 * promised {
                    return Err(AudioError::Truncated {
                        name: self.name.clone(),
                        decoded_s: self.source_seconds,
                        expected_s: Some(promised),
                    });
                }
                tracing::warn!(
                    input = %self.name,
                    decoded_s = self.source_seconds,
                    last_page_s = promised,
                    "{}; decoded all its last page promises",
                    if end_of_stream {
                        "the stream ends with a partial packet"
                    } else {
                        "the stream ends without its end-of-stream page"
                    }
                );
                self.finish()
            }
            crate::ogg::Tail::Cut { granule } => Err(AudioError::Truncated {
                name: self.name.clone(),
                decoded_s: self.source_seconds,
                expected_s: granule.map(|g| g as f64 / rate),
            }),
        }
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        self.flush_resampler()?;
        self.done = true;
        if self.good_packets == 0 || self.source_frames == 0 {
            if self.bad_packets > 0 {
                return Err(AudioError::Corrupt {
                    name: self.name.clone(),
                    reason: format!("none of its {} packets could be decoded", self.bad_packets),
                });
            }
            return Err(AudioError::NoSamples {
                name: self.name.clone(),
            });
        }
        if self.bad_packets > self.good_packets {
            return Err(AudioError::Corrupt {
                name: self.name.clone(),
                reason: format!(
                    "{} of {} packets could not be decoded",
                    self.bad_packets,
                    self.bad_packets + self.good_packets
                ),
            });
        }
        if self.non_finite as f64 > MAX_NON_FINITE_FRACTION * self.source_frames as f64 {
            return Err(AudioError::Corrupt {
                name: self.name.clone(),
                reason: format!(
                    "{:.1} % of its samples are not finite numbers",
                    100.0 * self.non_finite as f64 / self.source_frames as f64
                ),
            });
        }
        if self.ignored_trim_frames > 0 {
            tracing::debug!(input = %self.name, frames = self.ignored_trim_frames, "ignored mid-stream container trims");
        }
        if self.bad_packets > 0 {
            tracing::warn!(input = %self.name, skipped = self.bad_packets, "skipped undecodable packets");
        }
        // Formats with a length in the header (wav, flac, m4a) that end early without an I/O error.
        if let Some(expected) = self.info.duration_s
            && self.source_seconds < expected - 0.5
            && self.source_seconds < 0.98 * expected
        {
            return Err(AudioError::Truncated {
                name: self.name.clone(),
                decoded_s: self.source_seconds,
                expected_s: Some(expected),
            });
        }
        Ok(())
    }
}

/// Recognises the opening bytes of the containers we support, so that a file
/// that starts like audio but fails to open can be called truncated rather
/// than unknown.
fn sniff_magic(source: &mut Box<dyn MediaSource>) -> Option<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 12];
    let mut n = 0;
    while n < head.len() {
        match source.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let h = &head[..n];
    if h.starts_with(b"fLaC") {
        Some("flac")
    } else if h.starts_with(b"OggS") {
        Some("ogg")
    } else if h.starts_with(b"RIFF") && h.len() >= 12 && &h[8..12] == b"WAVE" {
        Some("wav")
    } else if h.starts_with(b"FORM") {
        Some("aiff")
    } else if h.len() >= 8 && &h[4..8] == b"ftyp" {
        Some("mp4")
    } else if h.starts_with(b"ID3") {
        Some("mp3")
    } else {
        None
    }
}

fn probe_error(name: &str, e: SymError, magic: Option<&'static str>) -> AudioError {
    let name = name.to_string();
    if let Some(kind) = magic
        && matches!(&e, SymError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof)
    {
        return AudioError::TruncatedHeader { name, format: kind };
    }
    if let Some(kind) = magic {
        return AudioError::Corrupt {
            name,
            reason: format!("it starts like {kind} but cannot be opened ({e}); the file may be truncated"),
        };
    }
    match e {
        // symphonia's own wording ("core (probe): no suitable format reader
        // found") means nothing to a user.
        SymError::Unsupported(_) => AudioError::UnknownFormat {
            name,
            reason: "no known container or stream header at its start".into(),
        },
        SymError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => AudioError::UnknownFormat {
            name,
            reason: "no known stream header found".into(),
        },
        SymError::IoError(err) => AudioError::Io { name, err },
        SymError::DecodeError(msg) => AudioError::Corrupt {
            name,
            reason: format!("malformed header: {msg}"),
        },
        other => AudioError::UnknownFormat {
            name,
            reason: other.to_string(),
        },
    }
}

/// Picks the default audio track and builds a packet decoder for it.
type TrackSetup = (u32, Packets, SourceInfo, Option<(u32, u32)>);

fn open_track(name: &str, reader: &dyn FormatReader) -> Result<TrackSetup, AudioError> {
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NoAudioTrack { name: name.to_string() })?;
    let params: &AudioCodecParameters = match &track.codec_params {
        Some(CodecParameters::Audio(p)) => p,
        _ => return Err(AudioError::NoAudioTrack { name: name.to_string() }),
    };
    let channels = params.channels.as_ref().map(|c| c.count());
    let mut info = SourceInfo {
        container: String::new(),
        codec: String::new(),
        sample_rate: params.sample_rate,
        channels,
        duration_s: None,
    };
    // Frames of decoder warm-up that the declared length includes (Opus pre-skip).
    let mut pre_skip = 0u64;
    let packets = if params.codec == CODEC_ID_OPUS {
        info.codec = "opus".into();
        let head = params
            .extra_data
            .as_deref()
            .ok_or_else(|| AudioError::Corrupt {
                name: name.to_string(),
                reason: "Opus stream without an OpusHead header".into(),
            })
            .and_then(|buf| {
                OpusHead::parse(buf).map_err(|reason| AudioError::Corrupt {
                    name: name.to_string(),
                    reason,
                })
            })?;
        info.sample_rate = Some(OPUS_RATE);
        info.channels = Some(head.channels);
        pre_skip = head.pre_skip as u64;
        let dec = OpusPackets::new(&head).map_err(|reason| AudioError::UnsupportedCodec {
            name: name.to_string(),
            codec: format!("opus ({reason})"),
        })?;
        Packets::Opus(dec)
    } else {
        let registry = symphonia::default::get_codecs();
        info.codec = registry
            .get_audio_decoder(params.codec)
            .map(|d| d.codec.info.short_name.to_string())
            .unwrap_or_else(|| format!("{}", params.codec));
        let decoder = registry
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| match e {
                SymError::Unsupported(_) => AudioError::UnsupportedCodec {
                    name: name.to_string(),
                    codec: info.codec.clone(),
                },
                other => AudioError::Corrupt {
                    name: name.to_string(),
                    reason: other.to_string(),
                },
            })?;
        Packets::Symphonia {
            decoder,
            planar: Vec::new(),
        }
    };
    if let (Some(frames), Some(rate)) = (track.num_frames, info.sample_rate)
        && rate > 0
    {
        info.duration_s = Some(frames.saturating_sub(pre_skip) as f64 / rate as f64);
    }
    let time_base = track.time_base.map(|tb| (tb.numer.get(), tb.denom.get()));
    Ok((track.id, packets, info, time_base))
}
