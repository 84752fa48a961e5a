//! `bench make` on a tiny corpus built from the fixtures, then scoring: the
//! ground truth must point at the audio that is really in each query.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sampleid_audio::{AudioConfig, decode_file};
use sampleid_bench::score::Match;
use sampleid_bench::{MakeOptions, Protocol, Suite, make, score};
use sampleid_corpus::{Entry, Kind, Split, manifest};
use sampleid_transform::Transform;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

/// A corpus whose test split holds seven tracks and one noise file.
fn tiny_corpus(dir: &Path) {
    let files = [
        "awakening-20s.ogg",
        "nebula-20s.ogg",
        "media-threat-20s.ogg",
        "deprecation-20s.ogg",
        "awakening-8s.flac",
        "coherence-10s-ffmpeg-seek.ogg",
        "awakening-8s.mp3",
    ];
    let mut entries = Vec::new();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(fixture(f), dir.join("files").join(f)).unwrap();
        let d = decode_file(&fixture(f), &AudioConfig::default()).unwrap().duration_s();
        entries.push(Entry {
            id: format!("m-{i:02}"),
            kind: Kind::Music,
            package: "fixtures".into(),
            path: format!("files/{f}"),
            duration_s: d,
            licence: "CC-BY-SA-3.0".into(),
            split: Split::Test,
            group: format!("music:{f}"),
            stem_set: String::new(),
            stem: String::new(),
            style: String::new(),
            origin: "file".into(),
            sha256: String::new(),
        });
    }
    manifest::write(&dir.join("manifest.csv"), &entries).unwrap();
}

fn options(corpus: &Path, out: &Path) -> MakeOptions {
    let mut o = MakeOptions::new(corpus.to_path_buf(), out.to_path_buf());
    o.suite = Suite::Paper;
    o.references = 2;
    o.negatives = Some(1);
    o.per_cell = 1;
    o.negatives_per_cell = 1;
    o.snrs_db = vec![10.0];
    o.audio_id_lengths_s = vec![1.0, 5.0];
    o.sample_id_lengths_s = vec![5.0];
    o.tbrs_db = vec![0.0];
    o
}

/// Normalised correlation of `a` with `b` at lag 0.
fn corr(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        ab += a[i] as f64 * b[i] as f64;
        aa += (a[i] as f64).powi(2);
        bb += (b[i] as f64).powi(2);
    }
    ab / (aa * bb).sqrt().max(1e-12)
}

#[test]
fn makes_queries_whose_ground_truth_is_right_and_scores_them() {
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus");
    let out = work.path().join("bench");
    tiny_corpus(&corpus);
    let bench = make(&options(&corpus, &out), &|_, _| {}).unwrap();
    assert_eq!(bench.references.len(), 2);
    assert_eq!(bench.negatives.len(), 1);
    // audio-id: 2 reverb settings × 1 SNR × 2 lengths × (1 + 1 negative) = 8;
    // sample-id: 4 families × 1 TBR × 1 length × 2 + 1 two-reference query = 9.
    let n = |p| bench.queries.iter().filter(|q| q.protocol == p).count();
    assert_eq!(n(Protocol::AudioId), 8);
    assert_eq!(n(Protocol::SampleId), 9);
    assert!(out.join("refs").read_dir().unwrap().count() == 2);

    for q in &bench.queries {
        let audio = decode_file(&out.join(&q.path), &AudioConfig::default()).unwrap();
        assert_eq!(
            audio.samples.len(),
            (q.length_s * 16_000.0).round() as usize,
            "{}",
            q.id
        );
        assert_eq!(q.negative, q.targets.is_empty());
        if q.protocol == Protocol::AudioId && !q.negative && !q.condition.contains("reverb") {
            // 10 dB SNR, no reverb: the reference excerpt must be right there.
            let t = &q.targets[0];
            let r = bench.references.iter().find(|r| r.id == t.reference).unwrap();
            let reference = decode_file(&out.join(&r.path), &AudioConfig::default())
                .unwrap()
                .samples;
            let start = (t.reference_start_s * 16_000.0).round() as usize;
            let c = corr(&audio.samples, &reference[start..]);
            assert!(c > 0.9, "{}: correlation {c} with the declared excerpt", q.id);
            let shifted = corr(&audio.samples, &reference[start + 4000..]);
            assert!(shifted < c, "{}: a 0.25 s shift must correlate less", q.id);
        }
    }
    let two = bench
        .queries
        .iter()
        .find(|q| q.condition.starts_with("two references"))
        .unwrap();
    assert_eq!(two.targets.len(), 2);

    // A same run again reuses the rendered queries and gives the same benchmark.
    let again = make(&options(&corpus, &out), &|_, _| {}).unwrap();
    assert_eq!(again, bench);

    // An oracle built from the ground truth scores 100 %; wrong answers do not.
    let mut oracle: HashMap<String, Vec<Match>> = HashMap::new();
    let mut wrong: HashMap<String, Vec<Match>> = HashMap::new();
    for q in &bench.queries {
        let m: Vec<Match> = q
            .targets
            .iter()
            .map(|t| Match {
                reference: format!("refs/{}.ogg", t.reference),
                score: 1.0,
                query_start: t.query_start_s,
                reference_start: t.reference_start_s,
                time_ratio: Some(t.time_ratio),
                pitch_shift: Some(t.pitch_shift),
            })
            .collect();
        oracle.insert(q.id.clone(), m);
        wrong.insert(
            q.id.clone(),
            vec![Match {
                reference: "refs/not-a-reference.ogg".into(),
                score: 1.0,
                query_start: 0.0,
                reference_start: 0.0,
                time_ratio: None,
                pitch_shift: None,
            }],
        );
    }
    let s = score(&bench, &oracle);
    for o in &s.overall {
        assert_eq!(
            (o.top1, o.map20_paper, o.map, o.segment_exact),
            (100.0, 100.0, 100.0, 100.0),
            "{o:?}"
        );
        assert_eq!(o.false_accept, 0.0);
    }
    let w = score(&bench, &wrong);
    for o in &w.overall {
        assert_eq!((o.top1, o.false_accept), (0.0, 100.0), "{o:?}");
    }
    let report = sampleid_bench::report::Summary {
        system: "oracle",
        benchmark: "b".into(),
        results: "r".into(),
        scores: &s,
    };
    let files = sampleid_bench::report::write(&work.path().join("report"), &report).unwrap();
    assert_eq!(files.len(), 4, "summary.json, report.md and one chart per protocol");
    let md = std::fs::read_to_string(work.path().join("report/report.md")).unwrap();
    assert!(md.contains("| noise 10 dB | 1 | 1 | 100.0"), "{md}");
}

#[test]
fn too_small_a_test_split_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus");
    tiny_corpus(&corpus);
    let mut o = options(&corpus, &work.path().join("bench"));
    o.references = 100;
    let e = make(&o, &|_, _| {}).unwrap_err().to_string();
    assert!(e.contains("the test split has 7 music tracks"), "{e}");
}

#[test]
fn too_small_a_validation_split_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus");
    tiny_corpus(&corpus);
    let mut o = options(&corpus, &work.path().join("bench"));
    o.split = Split::Validation;
    o.negatives = None;
    let e = make(&o, &|_, _| {}).unwrap_err().to_string();
    assert!(
        e.contains("the validation split has 0 music tracks; 2 references + 0 negatives + 4 backgrounds need 6"),
        "{e}"
    );
    // Enough for references and backgrounds, none left for negatives.
    let mut o = options(&corpus, &work.path().join("bench"));
    o.references = 3;
    o.negatives = None;
    let e = make(&o, &|_, _| {}).unwrap_err().to_string();
    assert!(e.contains("none is left for negative queries"), "{e}");
}

#[test]
fn validation_split_draws_only_validation_tracks() {
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus");
    tiny_corpus(&corpus);
    // The same files again as a validation split, under other ids.
    let mut entries = manifest::read(&corpus.join("manifest.csv")).unwrap();
    let validation: Vec<Entry> = entries
        .iter()
        .map(|e| Entry {
            id: e.id.replace("m-", "v-"),
            split: Split::Validation,
            ..e.clone()
        })
        .collect();
    entries.extend(validation);
    manifest::write(&corpus.join("manifest.csv"), &entries).unwrap();
    let mut o = options(&corpus, &work.path().join("bench"));
    o.split = Split::Validation;
    o.negatives = None;
    o.protocols = vec![Protocol::AudioId];
    o.snrs_db = vec![];
    o.user_audio_id_lengths_s = vec![5.0];
    o.suite = Suite::All;
    let bench = make(&o, &|_, _| {}).unwrap();
    // 7 tracks: 2 references, 4 backgrounds, 1 negative.
    assert_eq!((bench.references.len(), bench.negatives.len()), (2, 1));
    for r in bench.references.iter().chain(&bench.negatives) {
        assert!(r.id.starts_with("v-"), "{}", r.id);
    }
    assert!(!bench.queries.is_empty());
    for q in &bench.queries {
        assert!(q.source.starts_with("v-"), "{}: {}", q.id, q.source);
    }
}

#[test]
fn users_suite_ground_truth_is_right() {
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus");
    let out = work.path().join("bench");
    tiny_corpus(&corpus);
    let mut o = options(&corpus, &out);
    o.suite = Suite::Users;
    o.negatives = None;
    o.per_cell = 2;
    let bench = make(&o, &|_, _| {}).unwrap();
    assert_eq!((bench.references.len(), bench.negatives.len()), (2, 1));
    // audio-id: 7 conditions × 2 lengths × (2 + 1 negative, one per negative track);
    // sample-id: 12 conditions × 1 length × (2 + 1 negative).
    let n = |p| bench.queries.iter().filter(|q| q.protocol == p).count();
    assert_eq!(n(Protocol::AudioId), 42);
    assert_eq!(n(Protocol::SampleId), 36);
    assert!(!bench.queries.iter().any(|q| q.condition.contains("TBR")));
    let reference = |id: &str| {
        let r = bench.references.iter().find(|r| r.id == id).unwrap();
        decode_file(&out.join(&r.path), &AudioConfig::default())
            .unwrap()
            .samples
    };
    let mut checked = 0;
    for q in &bench.queries {
        let audio = decode_file(&out.join(&q.path), &AudioConfig::default())
            .unwrap()
            .samples;
        assert_eq!(audio.len(), (q.length_s * 16_000.0).round() as usize, "{}", q.id);
        let Some(t) = q.targets.first() else { continue };
        let start = (t.reference_start_s * 16_000.0).round() as usize;
        let r = reference(&t.reference);
        let len = audio.len();
        if r.len() < start + len + 4000 {
            continue;
        }
        let mut synthetic = sampleid_transform::Synthetic { sample_rate: 16_000 };
        // The reference excerpt at `at`, through `chain` when the query's filters
        // shift phases (so that only the declared position is tested).
        let excerpt = |at: usize, chain: &[Transform], res: &mut sampleid_transform::Synthetic| {
            let mut x = r[at..at + len].to_vec();
            for t in chain {
                x = t.apply(&x, 16_000, res).unwrap();
            }
            x
        };
        let (material, expected, shifted, least) = match q.condition.as_str() {
            "clean" | "mp3 32 kbit/s" => (
                audio.clone(),
                excerpt(start, &[], &mut synthetic),
                excerpt(start + 4000, &[], &mut synthetic),
                if q.condition == "clean" { 0.99 } else { 0.8 },
            ),
            "telephone" => {
                let chain = &q.transforms.0[1..];
                (
                    audio.clone(),
                    excerpt(start, chain, &mut synthetic),
                    excerpt(start + 4000, chain, &mut synthetic),
                    0.95,
                )
            }
            c if c.starts_with("speed") => {
                // Undo the speed change: the reference timeline again.
                let Transform::Speed { factor } = q.transforms.0[1] else {
                    panic!("{c}")
                };
                let back = Transform::Speed { factor: 1.0 / factor }
                    .apply(&audio, 16_000, &mut synthetic)
                    .unwrap();
                (
                    back[..back.len() - 8000].to_vec(),
                    excerpt(start, &[], &mut synthetic),
                    excerpt(start + 4000, &[], &mut synthetic),
                    0.8,
                )
            }
            _ => continue,
        };
        let c = corr(&material, &expected);
        assert!(
            c > least,
            "{} ({}): correlation {c} with the declared excerpt",
            q.id,
            q.condition
        );
        let off = corr(&material, &shifted);
        assert!(off < c, "{}: a 0.25 s shift must correlate less", q.id);
        checked += 1;
    }
    eprintln!("{checked} queries checked");
    assert!(checked >= 5, "only {checked} queries checked");
}
