//! The `settings_engine` target: settings that load are put to work. The
//! `settings` target only parses and validates a settings file; a value
//! that validates can still be one that a stage cannot run with (a huge
//! allocation, a division by zero, an index out of range, a loop that does
//! not end). Here every input that loads as settings (the same way as
//! `settings`: UTF-8, `Settings::from_toml`) becomes the engine's settings
//! (`Engine::with_settings`, the built-in models loaded once per process)
//! and runs what `sampleid` runs with them:
//!
//! - a new library in a scratch directory with `[index]`, two songs added
//!   (12 s of two fixtures, from WAV bytes: decoding and resampling with
//!   `[audio]`, the front end, the encoder, the landmarks, the chroma and
//!   the shingles), the ANN index saved;
//! - one identification of 8 s of the first song with every stage
//!   (`[query]`, `[refine]`, `[landmarks]`, the shingles' search);
//! - `sampleid match` of the same clip (`[matching]`, `[shingles]`) and
//!   `sampleid align` of the clip against its song (`[align]`).
//!
//! Errors are expected (settings that a stage refuses, a clip too short for
//! a front end that the settings made slower); a panic, a hang or a huge
//! allocation is a finding.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use sampleid_engine::{Engine, IdentifyOptions, Library, ModelSource, Settings, Source, Stage};

/// The songs (12 s each from `FROM_S` on) and the clip (8 s of the first,
/// from 2 s into the indexed part).
const SONGS: &[&str] = &["nebula-20s.ogg", "media-threat-20s.ogg"];
const FROM_S: usize = 4;
const SONG_S: usize = 12;
const CLIP_FROM_S: usize = 2;
const CLIP_S: usize = 8;

struct State {
    engine: Engine,
    /// The songs and the clip as 16-bit mono WAV files, at the default rate.
    songs: Vec<Vec<u8>>,
    clip: Vec<u8>,
    scratch: PathBuf,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let engine = Engine::load(Settings::default(), ModelSource::Default).expect("the built-in models load");
        let audio = &engine.settings().audio;
        let rate = audio.sample_rate as usize;
        let mut decoded = Vec::new();
        for s in SONGS {
            let samples = sampleid_engine::stages::audio::decode_file(&crate::library::fixture(s), audio)
                .expect("a fixture song decodes")
                .samples;
            decoded.push(samples[FROM_S * rate..(FROM_S + SONG_S) * rate].to_vec());
        }
        let clip = &decoded[0][CLIP_FROM_S * rate..(CLIP_FROM_S + CLIP_S) * rate];
        let clip = crate::library::wav(clip, audio.sample_rate);
        let songs = decoded
            .iter()
            .map(|s| crate::library::wav(s, audio.sample_rate))
            .collect();
        let scratch = std::env::temp_dir().join(format!("sampleid-fuzz-settings-engine-{}", std::process::id()));
        State {
            engine,
            songs,
            clip,
            scratch,
        }
    })
}

/// Loads the models and the audio (once per process), before the first
/// input: see [`crate::library::prepare`].
pub fn prepare() {
    state();
}

/// One execution of `settings_engine` (see the module's documentation).
pub fn settings_engine(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(settings) = Settings::from_toml(text) else {
        return;
    };
    let s = state();
    let Ok(engine) = s.engine.with_settings(settings) else {
        return;
    };
    let _ = fs::remove_dir_all(&s.scratch);
    let clip = || Source::bytes(s.clip.clone(), "clip", Some("wav"));
    if let Ok(lib) = Library::open_writer(&s.scratch, &engine) {
        for (i, song) in s.songs.iter().enumerate() {
            let _ = lib.add(&Source::bytes(song.clone(), &format!("song-{i}"), Some("wav")), None);
        }
        let _ = lib.save_ann();
        if let Ok(input) = engine.query_input_for(&clip(), Stage::All) {
            let _ = lib.identify_input(&input, &IdentifyOptions::default());
        }
        let _ = lib.passages(&clip());
    }
    let song = Source::bytes(s.songs[0].clone(), "song-0", Some("wav"));
    let _ = engine.align(&clip(), &song);
    let _ = fs::remove_dir_all(&s.scratch);
}
