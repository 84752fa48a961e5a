//! The engine's facade in process, on the bundled fixtures: index, identify
//! (the README's clip), match, add from bytes, skip, delete, typed errors.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sampleid_engine::{
    Engine, Error, IdentifyOptions, IndexEvent, IndexOptions, IndexOutcome, Library, ModelSource, Settings, Source,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

fn engine() -> Engine {
    Engine::load(Settings::default(), ModelSource::Default).expect("the built-in models load")
}

fn songs() -> Vec<PathBuf> {
    [
        "awakening-20s.ogg",
        "deprecation-20s.ogg",
        "media-threat-20s.ogg",
        "nebula-20s.ogg",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

/// A library of the first three test songs (the fourth stays unknown).
fn library_of_three(dir: &Path, engine: &Engine) -> (Library, Vec<PathBuf>) {
    let lib = Library::open_writer(&dir.join("lib"), engine).unwrap();
    let all = songs();
    for s in &all[..3] {
        lib.add(&Source::file(s), None).unwrap();
    }
    (lib, all)
}

/// `seconds` of `song` from `from_s` on (16 kHz), transformed by `t`.
fn transformed_excerpt(song: &Path, from_s: usize, seconds: usize, t: &sampleid_transform::Transform) -> Vec<f32> {
    let rate = 16_000;
    let source = sampleid_engine::stages::audio::decode_file(song, &Settings::default().audio)
        .unwrap()
        .samples;
    t.apply(
        &source[from_s * rate..(from_s + seconds) * rate],
        rate as u32,
        &mut sampleid_transform::Synthetic {
            sample_rate: rate as u32,
        },
    )
    .unwrap()
}

fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &v in samples {
        w.write_sample((v.clamp(-1.0, 1.0) * 32_767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn the_readme_clip_is_found_matched_and_the_library_is_kept_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("lib");
    let engine = engine();
    let lib = Library::open_writer(&db, &engine).unwrap();

    // Index four songs (and one of them twice): a worker pool, one writer.
    let mut inputs: Vec<Source> = songs().into_iter().map(Source::file).collect();
    inputs.push(Source::file(fixture("nebula-20s.ogg")));
    let done = Mutex::new(Vec::new());
    let summary = lib
        .index(inputs, &IndexOptions::default(), &|e| {
            if let IndexEvent::Done(o) = e {
                done.lock().unwrap().push((*o).clone());
            }
        })
        .unwrap();
    assert_eq!(
        (summary.indexed, summary.skipped, summary.failed),
        (4, 1, 0),
        "{summary:?}"
    );
    assert_eq!(done.lock().unwrap().len(), 5);
    assert_eq!(lib.len(), 4);

    // README's main job: nebula-20s.ogg's 4–14 s, +1 semitone, mixed at 5 dB
    // under other music (examples/make_clip.rs). The chroma alignment must put
    // it at 4 s of nebula, ratio 1, +1 semitone.
    let clip = Source::file(fixture("query-nebula-pitch1-mixed.wav"));
    let answer = lib.identify(&clip, &IdentifyOptions::default()).unwrap();
    assert!((answer.duration_s - 10.0).abs() < 0.05, "{answer:?}");
    let top = &answer.matches[0];
    assert_eq!(
        top.reference,
        fixture("nebula-20s.ogg").display().to_string(),
        "{answer:?}"
    );
    assert!((top.reference_start - top.query_start - 4.0).abs() <= 1.0, "{top:?}");
    assert!((top.time_ratio.unwrap() - 1.0).abs() <= 0.1, "{top:?}");
    assert!((top.pitch_shift.unwrap() - 1.0).abs() <= 0.5, "{top:?}");
    assert!((top.reference_duration - 20.0).abs() < 0.05, "{top:?}");
    assert_eq!(lib.song(top.song_id).unwrap().path, top.reference);

    // Audio matching on chroma finds the same passage, key and tempo, inside the song.
    let p = lib.passages(&clip).unwrap();
    let best = &p.matches[0];
    assert_eq!(best.reference, top.reference, "{p:?}");
    assert!(
        (best.start - 4.0).abs() <= 1.5 && (best.end - 14.0).abs() <= 1.5,
        "{best:?}"
    );
    assert_eq!(best.pitch_shift, 1, "{best:?}");
    assert!(p.matches.iter().all(|m| m.end <= 20.0 + 1e-9), "{p:?}");
    // The stored chroma shingles shortlist the songs DTW aligns: with one
    // candidate, the only song aligned is the clip's.
    assert!(db.join("shingles.json").exists() && db.join("shingles.usearch").exists());
    let mut one = Settings::default();
    one.shingles.candidates = 1;
    one.query.early_stop = 2.0; // every stage runs
    let narrow = Library::open(&db, &Engine::load(one, ModelSource::Default).unwrap()).unwrap();
    // Identification sees the shingles too: the clip's song is the nearest.
    let all = narrow.identify(&clip, &IdentifyOptions::default()).unwrap();
    let sh = all.matches[0].evidence.shingles.as_ref().expect("shingle evidence");
    assert_eq!((all.matches[0].song_id, sh.rank), (top.song_id, 0), "{all:?}");
    assert!(
        sh.relative < 1.0 && all.matches[0].stages.contains(&"chroma"),
        "{all:?}"
    );
    let hits = narrow
        .shingle_candidates(&engine.chroma(&clip, "match").unwrap().chroma, 4)
        .unwrap()
        .unwrap();
    assert_eq!(hits[0].recording as i64, top.song_id, "{hits:?}");
    let p1 = narrow.passages(&clip).unwrap();
    assert!(
        !p1.matches.is_empty() && p1.matches.iter().all(|m| m.song_id == top.song_id),
        "{p1:?}"
    );

    // Bytes in memory are the same content as the file: skipped, by hash.
    let bytes = std::fs::read(fixture("nebula-20s.ogg")).unwrap();
    let again = lib.add(&Source::bytes(bytes, "upload.ogg", Some("ogg")), None).unwrap();
    assert!(
        matches!(again, IndexOutcome::Skipped { id: Some(id), .. } if id == top.song_id),
        "{again:?}"
    );

    // A silent clip is a typed error, for every entry point.
    let silent = tmp.path().join("silence.wav");
    write_wav(&silent, 16_000, &[0.0; 16_000 * 5]);
    let silent = Source::file(&silent);
    for e in [
        lib.identify(&silent, &IdentifyOptions::default()).unwrap_err(),
        lib.passages(&silent).unwrap_err(),
        lib.add(&silent, None).unwrap_err(),
    ] {
        assert!(matches!(e, Error::Silent { .. }), "{e}");
        assert!(e.is_input());
        assert!(e.reason().starts_with("silent"), "{}", e.reason());
    }
    // Not audio: an audio error naming the input once.
    let text = Source::bytes(b"not audio, only words here".to_vec(), "notes.txt", None);
    let e = lib.identify(&text, &IdentifyOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Audio(_)), "{e}");
    assert_eq!(e.to_string().matches("notes.txt").count(), 1, "{e}");
    assert!(!e.reason().contains("notes.txt"), "{}", e.reason());

    // Delete, then a read-only library refuses writes and never sees it again.
    assert!(lib.delete(top.song_id).unwrap());
    assert!(!lib.delete(top.song_id).unwrap());
    drop(lib);
    let ro = Library::open(&db, &engine).unwrap();
    assert_eq!(ro.len(), 3);
    assert!(ro.song(top.song_id).is_none());
    let e = ro.delete(1).unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e}");
    let answer = ro.identify(&clip, &IdentifyOptions::default()).unwrap();
    assert!(answer.matches.iter().all(|m| m.song_id != top.song_id));
}

#[test]
fn libraries_and_settings_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Library::open(&tmp.path().join("none"), &engine()).unwrap_err();
    assert!(matches!(e, Error::Index(_)), "{e}");
    assert!(e.to_string().contains("not a sampleid library"), "{e}");

    let mut s = Settings::default();
    s.audio.block_samples = 0;
    let e = Engine::load(s.clone(), ModelSource::Default).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(e.to_string().contains("[audio]"), "{e}");

    // Other settings on the same models are validated the same way.
    let base = engine();
    let e = base.with_settings(s).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let mut other = Settings::default();
    other.query.max_matches = 3;
    let swapped = base.with_settings(other).unwrap();
    assert_eq!(swapped.settings().query.max_matches, 3);
    assert_eq!(base.settings().query.max_matches, Settings::default().query.max_matches);
    assert_eq!(swapped.layout().unwrap(), base.layout().unwrap());
}

/// The landmark stage on real music: an excerpt sped up (pitch and tempo
/// together, as a turntable) and one time-stretched (tempo alone) are found
/// with their factors and place; a song that is not in the library gets no
/// answer.
#[test]
fn landmarks_find_speed_and_tempo_changes_with_their_factors_and_reject_unknown_music() {
    use sampleid_engine::Stage;
    use sampleid_transform::Transform;
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine();
    let (lib, all) = library_of_three(tmp.path(), &engine);
    let opts = IdentifyOptions {
        stage: Stage::Landmarks,
        ..IdentifyOptions::default()
    };
    let rate = 16_000;
    for (name, t, time_ratio, pitch) in [
        (
            "speed",
            Transform::Speed { factor: 1.06 },
            1.0 / 1.06,
            12.0 * 1.06f64.log2(),
        ),
        ("tempo", Transform::TimeStretch { rate: 0.9 }, 1.0 / 0.9, 0.0),
    ] {
        // 10 s from 5 s on.
        let y = transformed_excerpt(&all[1], 5, 10, &t);
        let clip = tmp.path().join(format!("{name}.wav"));
        write_wav(&clip, rate as u32, &y);
        let answer = lib.identify(&Source::file(&clip), &opts).unwrap();
        let top = answer.matches.first().unwrap_or_else(|| panic!("{name}: no match"));
        assert_eq!(top.reference, all[1].display().to_string(), "{name}: {answer:?}");
        assert_eq!(top.stage, "quads", "{name}: {answer:?}");
        let r = top.time_ratio.unwrap();
        assert!(
            (r / time_ratio - 1.0).abs() < 0.02,
            "{name}: time ratio {r} vs {time_ratio}"
        );
        let p = top.pitch_shift.unwrap();
        assert!((p - pitch).abs() < 0.3, "{name}: pitch {p} vs {pitch}");
        // Where query time 0 is in the song: 5 s.
        let at = top.reference_start - top.query_start / r;
        assert!((at - 5.0).abs() < 0.3, "{name}: located at {at} s: {top:?}");
    }
    // The fourth song is not in the library.
    let unknown = lib.identify(&Source::file(&all[3]), &opts).unwrap();
    assert!(unknown.matches.is_empty(), "{unknown:?}");
}

/// The fused answer (the default stage): a sped-up excerpt is found with a
/// calibrated confidence and the stages that found it; a song that is not in
/// the library has candidates (listed with `min_confidence` 0) but none
/// reaches the default threshold, so the answer is "no match".
#[test]
fn the_fused_answer_is_calibrated_and_says_no_match_for_unknown_music() {
    use sampleid_transform::Transform;
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine();
    let (lib, all) = library_of_three(tmp.path(), &engine);
    let rate = 16_000;
    let y = transformed_excerpt(&all[2], 3, 10, &Transform::Speed { factor: 0.96 });
    let clip = tmp.path().join("speed.wav");
    write_wav(&clip, rate as u32, &y);
    let answer = lib.identify(&Source::file(&clip), &IdentifyOptions::default()).unwrap();
    let top = answer.matches.first().unwrap_or_else(|| panic!("no match: {answer:?}"));
    assert_eq!(top.reference, all[2].display().to_string(), "{answer:?}");
    let c = top.confidence.expect("the engine's answers carry a confidence");
    assert!((0.5..=1.0).contains(&c), "{answer:?}");
    assert_eq!(top.score, c);
    assert!(top.stages.contains(&"quads"), "{:?}", top.stages);
    let l = top.evidence.landmarks.as_ref().expect("landmark evidence");
    assert!(l.verified && l.kappa > 0.25, "{l:?}");
    assert!((top.time_ratio.unwrap() * 0.96 - 1.0).abs() < 0.02, "{top:?}");
    for m in &answer.matches {
        assert!(m.score >= 0.5, "below the default threshold: {m:?}");
    }

    // The fourth song is not in the library.
    let unknown = Source::file(&all[3]);
    let answer = lib.identify(&unknown, &IdentifyOptions::default()).unwrap();
    assert!(answer.matches.is_empty(), "{answer:?}");
    let every = lib
        .identify(
            &unknown,
            &IdentifyOptions {
                min_confidence: Some(0.0),
                ..IdentifyOptions::default()
            },
        )
        .unwrap();
    assert!(
        !every.matches.is_empty(),
        "the neural stage proposes candidates for any clip"
    );
    for m in &every.matches {
        let c = m.confidence.unwrap();
        assert!((0.0..0.5).contains(&c), "{m:?}");
        assert!(m.evidence.neural.is_some() || m.evidence.landmarks.is_some(), "{m:?}");
    }
}

/// Songs added and deleted while a compaction runs on another thread are
/// kept (or stay deleted) whatever the interleaving: the compaction's
/// finish catches up with them, and nothing waits for the whole copy.
#[test]
fn songs_added_and_deleted_while_a_compaction_runs_are_kept_and_stay_deleted() {
    use sampleid_engine::Stage;
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine();
    let (lib, all) = library_of_three(tmp.path(), &engine);
    lib.add(&Source::file(&all[3]), None).unwrap();
    let id_of = |lib: &Library, p: &Path| lib.find(&p.display().to_string());
    let first = id_of(&lib, &all[0]);
    assert!(lib.delete(first[0]).unwrap());
    assert!(lib.dead_fraction().unwrap() > 0.0);
    std::thread::scope(|scope| {
        let compaction = scope.spawn(|| lib.compact());
        // The deleted song again (a new id), and another one deleted.
        let again = lib.add(&Source::file(&all[0]), None).unwrap();
        assert!(matches!(again, IndexOutcome::Indexed { .. }), "{again:?}");
        assert!(lib.delete(id_of(&lib, &all[1])[0]).unwrap());
        let done = compaction.join().unwrap().unwrap();
        assert!(done.is_some(), "the first song's rows were dead");
    });
    // Whatever the second delete's rows are (reclaimed, or dead for the
    // next compaction), a second compaction leaves none.
    lib.compact().unwrap();
    assert_eq!(lib.stats().unwrap().dead_segments, 0);
    let opts = IdentifyOptions {
        stage: Stage::Landmarks,
        ..IdentifyOptions::default()
    };
    for (i, song) in all.iter().enumerate() {
        let answer = lib.identify(&Source::file(song), &opts).unwrap();
        let top = answer.matches.first().map(|m| m.reference.clone());
        if i == 1 {
            assert_eq!(top, None, "the deleted song stays deleted: {answer:?}");
        } else {
            assert_eq!(top, Some(song.display().to_string()), "{answer:?}");
        }
    }
    // The same after reopening.
    drop(lib);
    let lib = Library::open_writer(&tmp.path().join("lib"), &engine).unwrap();
    assert_eq!(lib.stats().unwrap().songs, 3);
}

/// A new library stores the current landmark version's quads; the rows of
/// a song carry the sparse peaks, so that a library of the previous version
/// is given that version's quads (fewer: 3 B per root, 9 per second).
#[test]
fn songs_get_the_quads_of_their_librarys_landmark_version() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = engine();
    let rows = engine.reference_rows(&Source::file(&songs()[0]), None).unwrap();
    let current = rows.landmarks_for(None).unwrap();
    assert_eq!(*current, rows.landmarks);
    let same = rows
        .landmarks_for(Some(sampleid_engine::stages::landmarks::STORED_VERSION))
        .unwrap();
    assert_eq!(*same, rows.landmarks);
    let v2 = rows
        .landmarks_for(Some(sampleid_engine::stages::landmarks::STORED_VERSION_V2))
        .unwrap();
    assert_eq!(v2.peaks, rows.landmarks.peaks);
    assert_eq!(
        v2.quads,
        sampleid_engine::stages::landmarks::quads(
            &rows.sparse_peaks,
            &sampleid_engine::stages::landmarks::QuadConfig::reference_v2()
        )
    );
    assert!(
        !v2.quads.is_empty() && v2.quads.len() < rows.landmarks.quads.len(),
        "{} v2 quads, {} now",
        v2.quads.len(),
        rows.landmarks.quads.len()
    );
    assert!(rows.landmarks_for(Some("unknown/v0")).is_err());

    // Committed to a new library, the current version's quads are stored.
    let lib = Library::open_writer(&tmp.path().join("lib"), &engine).unwrap();
    lib.commit("a", "h", &rows).unwrap();
    let r = lib.read();
    assert_eq!(
        r.landmark_version(),
        Some(sampleid_engine::stages::landmarks::STORED_VERSION)
    );
    let stored = r.song_landmarks(&r.songs()[0]).unwrap();
    assert_eq!(stored.quads.len(), rows.landmarks.quads.len());
}
