//! A tiny training pool made from the fixtures, shared by the tests.

use std::path::{Path, PathBuf};

use sampleid_audio::{AudioConfig, decode_file};
use sampleid_train::Pool;
use sampleid_train::cache::Cached;
use sampleid_train::pairs::StemSet;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

fn cache(dir: &Path, name: &str, samples: &[f32]) -> Cached {
    let p = dir.join(format!("{name}.s16"));
    let bytes: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    std::fs::write(&p, bytes).unwrap();
    Cached {
        path: p,
        len: samples.len(),
    }
}

pub fn pool(dir: &Path) -> Pool {
    let mut pool = Pool::default();
    for (f, style) in [
        ("awakening-20s.ogg", "orchestral"),
        ("nebula-20s.ogg", "electronic"),
        ("media-threat-20s.ogg", "orchestral"),
    ] {
        let x = decode_file(&fixture(f), &AudioConfig::default()).unwrap().samples;
        pool.music.push((f.to_string(), cache(dir, f, &x)));
        pool.music_styles.push(style.to_string());
    }
    // A stem set: the first 20 s of two different tracks, as if they were one piece's parts.
    let a = decode_file(&fixture("deprecation-20s.ogg"), &AudioConfig::default())
        .unwrap()
        .samples;
    let b = decode_file(&fixture("awakening-20s.ogg"), &AudioConfig::default())
        .unwrap()
        .samples;
    pool.stem_sets.push(StemSet {
        id: "set".into(),
        stems: vec![cache(dir, "stem-a", &a), cache(dir, "stem-b", &b)],
        style: "electronic".into(),
    });
    pool.noise.push(cache(
        dir,
        "noise",
        &sampleid_transform::pink_noise(80_000, &mut sampleid_transform::Rng::new(1)),
    ));
    pool
}
