//! Synthetic stem sets: Musical MIDI Accompaniment (`mma`, Debian) grooves
//! written as MIDI, then each instrument family rendered alone through a
//! General MIDI SoundFont with rustysynth. Effects (reverb, chorus) are off so
//! that the stems add up exactly to the mix. Each set's style (the groove
//! family: bossanova, rock, waltz, …) is a label for genre classification.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use midly::{MetaMessage, Smf, TrackEventKind};
use rustysynth::{MidiFile, MidiFileSequencer, SoundFont, Synthesizer, SynthesizerSettings};

use crate::{CorpusError, wav};

/// Sample rate of the rendered stems.
pub const RATE: u32 = 16_000;

/// mma from its extracted package.
#[derive(Debug, Clone)]
pub struct Mma {
    /// The `mma` Python script.
    pub script: PathBuf,
    /// Its library root (MMA_HOME).
    pub home: PathBuf,
}

/// One groove to render: style file, tempo, key and chord progression.
#[derive(Debug, Clone, PartialEq)]
pub struct GrooveSpec {
    /// Groove name (a style file of mma's standard library).
    pub groove: String,
    pub tempo: u32,
    /// Semitones from C.
    pub transpose: i32,
    /// Chords, one per bar, repeated to fill `bars`.
    pub progression: Vec<String>,
    /// Bars of music.
    pub bars: usize,
}

/// Chord progressions used for the grooves (16 bars each).
pub const PROGRESSIONS: [&[&str]; 4] = [
    &["C", "Am", "F", "G"],
    &["Dm7", "G7", "Cmaj7", "Cmaj7"],
    &["C7", "F7", "C7", "C7", "F7", "F7", "C7", "C7", "G7", "F7", "C7", "G7"],
    &["Am", "F", "C", "G"],
];

impl Mma {
    fn command(&self) -> Command {
        let mut c = Command::new("python3");
        c.arg(&self.script).env("MMA_HOME", &self.home);
        c
    }

    /// Builds mma's groove database once (`mma -G`).
    pub fn prepare(&self) -> Result<(), CorpusError> {
        if self.home.join("lib/stdlib/.mmaDB").exists() {
            return Ok(());
        }
        let out = self.command().arg("-G").output().map_err(|e| CorpusError::Tool {
            tool: "mma -G".into(),
            reason: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(CorpusError::Tool {
                tool: "mma -G".into(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// The style files of the standard library (each names a groove).
    pub fn grooves(&self) -> Result<Vec<String>, CorpusError> {
        let dir = self.home.join("lib/stdlib");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| CorpusError::io(&dir, e))?
            .filter_map(|e| e.ok()?.path().file_name()?.to_str().map(str::to_string))
            .filter_map(|n| n.strip_suffix(".mma").map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Writes the MIDI file of one groove.
    pub fn midi(&self, spec: &GrooveSpec, out: &Path) -> Result<(), CorpusError> {
        let mut text = format!(
            "Tempo {}\nGroove {}\nTranspose {}\n",
            spec.tempo, spec.groove, spec.transpose
        );
        let bars = spec.bars.max(1);
        for bar in 0..bars {
            text.push_str(&format!(
                "{} {}\n",
                bar + 1,
                spec.progression[bar % spec.progression.len()]
            ));
        }
        let src = out.with_extension("mma");
        std::fs::write(&src, text).map_err(|e| CorpusError::io(&src, e))?;
        let r = self
            .command()
            .arg("-f")
            .arg(out)
            .arg(&src)
            .output()
            .map_err(|e| CorpusError::Tool {
                tool: "mma".into(),
                reason: e.to_string(),
            })?;
        let _ = std::fs::remove_file(&src);
        if !r.status.success() || !out.exists() {
            return Err(CorpusError::Tool {
                tool: format!("mma (groove {})", spec.groove),
                reason: String::from_utf8_lossy(&r.stdout).trim().to_string()
                    + String::from_utf8_lossy(&r.stderr).trim(),
            });
        }
        Ok(())
    }
}

/// The instrument family of an mma track name ("Drum-Snare" → "drum").
fn family(track_name: &str) -> String {
    track_name
        .split(['-', '_'])
        .next()
        .unwrap_or(track_name)
        .trim()
        .to_ascii_lowercase()
}

/// Splits a type-1 MIDI file into one file per instrument family (each with
/// the tempo/meta track 0 kept): (family, SMF bytes).
pub fn split_by_family(midi: &[u8]) -> Result<Vec<(String, Vec<u8>)>, CorpusError> {
    let smf = Smf::parse(midi).map_err(|e| CorpusError::Midi(e.to_string()))?;
    if smf.tracks.len() < 2 {
        return Err(CorpusError::Midi("expected a meta track and instrument tracks".into()));
    }
    let mut families: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, track) in smf.tracks.iter().enumerate().skip(1) {
        let has_notes = track
            .iter()
            .any(|e| matches!(e.kind, TrackEventKind::Midi { message: midly::MidiMessage::NoteOn { vel, .. }, .. } if vel > 0));
        if !has_notes {
            continue;
        }
        let name = track
            .iter()
            .find_map(|e| match e.kind {
                TrackEventKind::Meta(MetaMessage::TrackName(n)) => Some(String::from_utf8_lossy(n).to_string()),
                _ => None,
            })
            .unwrap_or_else(|| format!("track{i}"));
        let fam = family(&name);
        match families.iter_mut().find(|(f, _)| *f == fam) {
            Some((_, v)) => v.push(i),
            None => families.push((fam, vec![i])),
        }
    }
    families
        .into_iter()
        .map(|(fam, idx)| {
            let mut part = Smf::new(smf.header);
            part.tracks.push(smf.tracks[0].clone());
            for i in idx {
                part.tracks.push(smf.tracks[i].clone());
            }
            let mut bytes = Vec::new();
            part.write_std(&mut bytes)
                .map_err(|e| CorpusError::Midi(e.to_string()))?;
            Ok((fam, bytes))
        })
        .collect()
}

/// Moves every melodic instrument to another General MIDI program of its
/// family (program `8·f + (p + offset) mod 8`): the same notes played by other
/// instruments. Drums (channel 10) keep their kit.
pub fn remap_programs(midi: &[u8], offset: u8) -> Result<Vec<u8>, CorpusError> {
    let mut smf = Smf::parse(midi).map_err(|e| CorpusError::Midi(e.to_string()))?;
    for track in &mut smf.tracks {
        for e in track.iter_mut() {
            if let TrackEventKind::Midi {
                channel,
                message: midly::MidiMessage::ProgramChange { program },
            } = &mut e.kind
                && channel.as_int() != 9
            {
                let p = program.as_int();
                *program = ((p / 8) * 8 + (p % 8 + offset) % 8).into();
            }
        }
    }
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)
        .map_err(|e| CorpusError::Midi(e.to_string()))?;
    Ok(bytes)
}

/// Loads a SoundFont.
pub fn load_font(path: &Path) -> Result<Arc<SoundFont>, CorpusError> {
    let mut f = std::fs::File::open(path).map_err(|e| CorpusError::io(path, e))?;
    Ok(Arc::new(
        SoundFont::new(&mut f).map_err(|e| CorpusError::Midi(e.to_string()))?,
    ))
}

/// Renders a whole piece (all instruments together, programs moved by
/// `program_offset`), peak-normalised to 0.95. `work` holds the temporary MIDI file.
pub fn render_piece(
    mma: &Mma,
    font: &Arc<SoundFont>,
    spec: &GrooveSpec,
    program_offset: u8,
    work: &Path,
) -> Result<Vec<f32>, CorpusError> {
    std::fs::create_dir_all(work).map_err(|e| CorpusError::io(work, e))?;
    let midi_path = work.join(format!(
        "{}-{}-{}-{program_offset}.mid",
        spec.groove, spec.tempo, spec.transpose
    ));
    mma.midi(spec, &midi_path)?;
    let midi = std::fs::read(&midi_path).map_err(|e| CorpusError::io(&midi_path, e))?;
    let _ = std::fs::remove_file(&midi_path);
    let midi = if program_offset.is_multiple_of(8) {
        midi
    } else {
        remap_programs(&midi, program_offset)?
    };
    let mut y = render(font, &midi)?;
    let peak = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        y.iter_mut().for_each(|v| *v *= 0.95 / peak);
    }
    Ok(y)
}

/// Renders one MIDI file to mono samples at [`RATE`], with a 1.5 s release tail.
pub fn render(font: &Arc<SoundFont>, midi: &[u8]) -> Result<Vec<f32>, CorpusError> {
    let file = Arc::new(MidiFile::new(&mut Cursor::new(midi)).map_err(|e| CorpusError::Midi(e.to_string()))?);
    let mut settings = SynthesizerSettings::new(RATE as i32);
    settings.enable_reverb_and_chorus = false;
    let synth = Synthesizer::new(font, &settings).map_err(|e| CorpusError::Midi(e.to_string()))?;
    let mut seq = MidiFileSequencer::new(synth);
    seq.play(&file, false);
    let total = ((file.get_length() + 1.5) * RATE as f64) as usize;
    let (mut left, mut right) = (vec![0.0f32; 1024], vec![0.0f32; 1024]);
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        seq.render(&mut left, &mut right);
        out.extend(left.iter().zip(&right).map(|(l, r)| 0.5 * (l + r)));
    }
    out.truncate(total);
    Ok(out)
}

/// A rendered groove: the mix and one stem per instrument family.
#[derive(Debug, Clone)]
pub struct RenderedGroove {
    pub mix: PathBuf,
    pub stems: Vec<(String, PathBuf)>,
}

/// Renders `spec` into `dir` (atomically; an existing complete `dir` is reused).
pub fn render_groove(
    mma: &Mma,
    font: &Arc<SoundFont>,
    spec: &GrooveSpec,
    dir: &Path,
) -> Result<RenderedGroove, CorpusError> {
    if !dir.join("mix.wav").exists() {
        let tmp = dir.with_extension("part");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| CorpusError::io(&tmp, e))?;
        let midi_path = tmp.join("groove.mid");
        mma.midi(spec, &midi_path)?;
        let midi = std::fs::read(&midi_path).map_err(|e| CorpusError::io(&midi_path, e))?;
        let parts = split_by_family(&midi)?;
        let stems: Vec<(String, Vec<f32>)> = parts
            .iter()
            .map(|(fam, bytes)| Ok((fam.clone(), render(font, bytes)?)))
            .collect::<Result<_, CorpusError>>()?;
        let len = stems.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
        let mut mix = vec![0.0f32; len];
        for (_, s) in &stems {
            for (m, v) in mix.iter_mut().zip(s) {
                *m += v;
            }
        }
        // One gain for the whole set keeps the stems additive and the mix unclipped.
        let peak = mix.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let g = if peak > 0.95 { 0.95 / peak } else { 1.0 };
        for (fam, s) in &stems {
            // Every stem as long as the mix, so that the set stays aligned.
            let mut scaled: Vec<f32> = s.iter().map(|v| v * g).collect();
            scaled.resize(len, 0.0);
            wav::write_mono16(&tmp.join(format!("{fam}.wav")), &scaled, RATE)?;
        }
        let scaled: Vec<f32> = mix.iter().map(|v| v * g).collect();
        wav::write_mono16(&tmp.join("mix.wav"), &scaled, RATE)?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| CorpusError::io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| CorpusError::io(dir, e))?;
    }
    let mut stems: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| CorpusError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            (name != "mix").then_some((name, p))
        })
        .collect();
    stems.sort();
    Ok(RenderedGroove {
        mix: dir.join("mix.wav"),
        stems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_mma_track_names() {
        assert_eq!(family("Drum-Snare"), "drum");
        assert_eq!(family("Chord-Piano"), "chord");
        assert_eq!(family("Bass"), "bass");
    }

    fn programs(midi: &[u8]) -> Vec<(u8, u8)> {
        let smf = Smf::parse(midi).unwrap();
        smf.tracks
            .iter()
            .flatten()
            .filter_map(|e| match e.kind {
                TrackEventKind::Midi {
                    channel,
                    message: midly::MidiMessage::ProgramChange { program },
                } => Some((channel.as_int(), program.as_int())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn remapping_keeps_each_instrument_in_its_family_and_the_drums_alone() {
        use midly::{Header, MidiMessage, TrackEvent, num::u4, num::u7, num::u28};
        let pc = |ch: u8, p: u8| TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Midi {
                channel: u4::new(ch),
                message: MidiMessage::ProgramChange { program: u7::new(p) },
            },
        };
        let end = TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        };
        let mut smf = Smf::new(Header::new(
            midly::Format::Parallel,
            midly::Timing::Metrical(480.into()),
        ));
        // Acoustic grand (0), fingered bass (33), a drum kit on channel 10.
        smf.tracks.push(vec![pc(0, 0), pc(1, 33), pc(9, 0), end]);
        let mut bytes = Vec::new();
        smf.write_std(&mut bytes).unwrap();
        let moved = remap_programs(&bytes, 3).unwrap();
        assert_eq!(programs(&moved), vec![(0, 3), (1, 36), (9, 0)]);
        // Offset 7 wraps inside the family: bass 33 → 32.
        assert_eq!(programs(&remap_programs(&bytes, 7).unwrap())[1], (1, 32));
    }
}
