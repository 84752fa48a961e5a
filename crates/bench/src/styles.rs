//! Labelled sets for category identification (`sampleid genre`).
//!
//! - [`make_style_set`]: mma grooves grouped into style families (waltz,
//!   march, blues, latin, country/folk, jazz/swing, rock, ballad), each
//!   groove rendered several times with its own tempo, key, General MIDI
//!   SoundFont and instrument programs. The group of a clip is its groove,
//!   so that cross-validation never tests a groove it trained on.
//! - [`corpus_style_labels`]: the corpus's music labelled by the family of its
//!   package's indicative style (`../shared/docs/corpus.md`): real music, but
//!   one label per package, so the group is the package.
//!
//! Both write `labels.csv` with the columns `path,label,group` (paths
//! relative to the file).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sampleid_corpus::grooves::{GrooveSpec, Mma, load_font, render_piece};
use sampleid_fsio::AtomicFile;
use sampleid_transform::Rng;

use crate::BenchError;
use crate::make::write_wav;

/// Style families of mma's standard grooves; grooves in none (metronomes,
/// arpeggio exercises, mixed styles) are left out.
pub const GROOVE_FAMILIES: &[(&str, &[&str])] = &[
    (
        "waltz",
        &[
            "arpeggiowaltz",
            "broadwaywaltz",
            "countrywaltz",
            "fastjazzwaltz",
            "fastwaltz",
            "frenchwaltz",
            "jazzwaltz",
            "latinwaltz",
            "modernjazzwaltz",
            "rockwaltz",
            "vienesewaltz",
            "waltz",
        ],
    ),
    ("march", &["68march", "bwmarch", "dixiemarch", "march", "polka"]),
    (
        "blues",
        &[
            "blues",
            "blues128",
            "blues68",
            "countryblues",
            "fastblues",
            "slowblues",
            "boggiewoggie",
            "shuffleboggie",
        ],
    ),
    (
        "latin",
        &[
            "afro-cuban",
            "beguine",
            "bolero",
            "bossanova",
            "calypso",
            "chacha",
            "cubanguitar",
            "jazzrhumba",
            "lighttango",
            "mambo",
            "merengue",
            "rhumba",
            "salsa",
            "samba",
            "slowbolero",
            "son",
            "tango",
        ],
    ),
    (
        "country-folk",
        &[
            "bluegrass",
            "bluefolk",
            "countryswing",
            "hillcountry",
            "slowcountry",
            "westernswing",
            "folk",
            "folkballad",
            "zydeco",
        ],
    ),
    (
        "jazz-swing",
        &[
            "68swing",
            "bebop",
            "bigband",
            "dixie",
            "easyswing",
            "evansish",
            "fastswing",
            "folkyjazz",
            "gypsyjazz",
            "jazz-54",
            "jazzcombo",
            "jazzguitar",
            "mellowjazz",
            "modernjazz",
            "nitejazz",
            "slowjazz",
            "swing",
        ],
    ),
    (
        "rock",
        &[
            "50srock",
            "60srock",
            "8beat",
            "basicrock",
            "bubblerock",
            "folkrock",
            "jazzrock",
            "rock-128",
            "softrock",
            "twist",
        ],
    ),
    (
        "ballad",
        &[
            "ballad",
            "ballad128",
            "ballad68",
            "guitarballad",
            "pianoballad",
            "popballad",
            "rb-ballad",
            "rockballad",
            "stringballad",
            "lullaby",
            "hymn",
            "spiritual",
            "slowspiritual",
        ],
    ),
];

/// The family of a groove, if it has one.
pub fn groove_family(groove: &str) -> Option<&'static str> {
    GROOVE_FAMILIES
        .iter()
        .find(|(_, gs)| gs.contains(&groove))
        .map(|(f, _)| *f)
}

/// What [`make_style_set`] renders.
#[derive(Debug, Clone)]
pub struct StyleSetOptions {
    /// Corpus directory (`tools/root` holds mma and the SoundFonts).
    pub corpus: PathBuf,
    pub out: PathBuf,
    /// Renditions per groove.
    pub variants: usize,
    /// Bars per rendition (at least 4).
    pub bars: usize,
    pub seed: u64,
}

/// One labelled clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// Relative to the labels file.
    pub path: String,
    pub label: String,
    pub group: String,
}

/// Chords of the progressions (one per bar).
const CHORDS: [&str; 12] = ["C", "Dm", "Em", "F", "G", "Am", "Bb", "D7", "E7", "A7", "Cmaj7", "G7"];

/// Renders the style set into `opts.out` (`clips/*.wav`, `labels.csv`).
pub fn make_style_set(
    opts: &StyleSetOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Labelled>, BenchError> {
    let root = opts.corpus.join("tools/root");
    let mma = Mma {
        script: root.join("usr/bin/mma"),
        home: root.join("usr/share/mma"),
    };
    let fonts_paths = [
        root.join("usr/share/sounds/sf2/TimGM6mb.sf2"),
        root.join("usr/share/sounds/sf2/sf_GMbank.sf2"),
    ];
    if !mma.script.exists() || fonts_paths.iter().any(|p| !p.exists()) {
        return Err(BenchError::Corpus(format!(
            "mma and the SoundFonts are missing under {}; run `sampleid corpus fetch` and `sampleid bench versions` first",
            root.display()
        )));
    }
    mma.prepare()?;
    let fonts = [load_font(&fonts_paths[0])?, load_font(&fonts_paths[1])?];
    let available = mma.grooves()?;
    let clips = opts.out.join("clips");
    let work = opts.out.join("work");
    for d in [&clips, &work] {
        std::fs::create_dir_all(d).map_err(|e| BenchError::io(d, e))?;
    }
    let mut rng = Rng::new(opts.seed);
    let mut plans = Vec::new();
    for (family, grooves) in GROOVE_FAMILIES {
        for g in grooves.iter().filter(|g| available.iter().any(|a| a == *g)) {
            for v in 0..opts.variants.max(1) {
                let progression = (0..8).map(|_| CHORDS[rng.below(CHORDS.len())].to_string()).collect();
                let spec = GrooveSpec {
                    groove: g.to_string(),
                    tempo: 70 + rng.below(90) as u32,
                    transpose: rng.below(12) as i32 - 5,
                    progression,
                    bars: opts.bars.max(4),
                };
                let offset = rng.below(8) as u8;
                let font = rng.below(2);
                plans.push((family.to_string(), format!("{g}-{v}"), spec, offset, font));
            }
        }
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let out: Vec<Option<Labelled>> = plans
        .par_iter()
        .map(|(family, id, spec, offset, font)| {
            let path = format!("clips/{id}.wav");
            let file = opts.out.join(&path);
            let ok = file.exists()
                || match render_piece(&mma, &fonts[*font], spec, *offset, &work) {
                    Ok(audio) => write_wav(&file, &audio).is_ok(),
                    // Some grooves do not render every progression; they are left out.
                    Err(_) => false,
                };
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, plans.len());
            ok.then(|| Labelled {
                path,
                label: family.clone(),
                group: format!("groove:{}", spec.groove),
            })
        })
        .collect();
    let _ = std::fs::remove_dir_all(&work);
    let labelled: Vec<Labelled> = out.into_iter().flatten().collect();
    if labelled.len() < plans.len() / 2 {
        return Err(BenchError::Corpus("most grooves failed to render".into()));
    }
    write_labels(&opts.out.join("labels.csv"), &labelled)?;
    Ok(labelled)
}

/// The family of a corpus package's indicative style: the first of its
/// words that names one (tracker and chiptune music first, as the sound that
/// defines it).
pub fn style_family(style: &str) -> Option<&'static str> {
    let s = style.to_ascii_lowercase();
    const ORDER: &[(&str, &[&str])] = &[
        ("chiptune-tracker", &["tracker", "chiptune", "chip"]),
        ("rock-metal", &["rock", "metal"]),
        (
            "orchestral",
            &[
                "orchestral",
                "classical",
                "score",
                "medieval",
                "baroque",
                "renaissance",
                "celtic",
            ],
        ),
        ("electronic", &["electronic", "synth", "industrial", "techno", "trance"]),
        ("ambient", &["ambient", "lounge", "relaxed"]),
        ("pop", &["pop"]),
    ];
    // The family whose word comes first in the description.
    ORDER
        .iter()
        .filter_map(|(fam, words)| words.iter().filter_map(|w| s.find(w)).min().map(|at| (at, *fam)))
        .min()
        .map(|(_, fam)| fam)
}

/// Writes `labels.csv` for the corpus's music with a style family; returns it.
pub fn corpus_style_labels(corpus: &Path, out: &Path) -> Result<Vec<Labelled>, BenchError> {
    let entries = sampleid_corpus::manifest::read(&corpus.join("manifest.csv"))?;
    let base = out.parent().unwrap_or(Path::new("."));
    let mut labelled = Vec::new();
    for e in entries.iter().filter(|e| e.kind == sampleid_corpus::Kind::Music) {
        let Some(family) = style_family(&e.style) else { continue };
        let abs = corpus.join(&e.path);
        let abs = abs.canonicalize().unwrap_or(abs);
        let base = base.canonicalize().unwrap_or(base.to_path_buf());
        let path = abs
            .strip_prefix(&base)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| abs.to_string_lossy().into_owned());
        labelled.push(Labelled {
            path,
            label: family.to_string(),
            group: format!("package:{}", e.package),
        });
    }
    write_labels(out, &labelled)?;
    Ok(labelled)
}

/// `path,label,group` with a header; fields quoted when needed. Written atomically.
pub fn write_labels(path: &Path, rows: &[Labelled]) -> Result<(), BenchError> {
    let csv_err = |e: csv::Error| BenchError::Format(format!("{}: {e}", path.display()));
    let mut file = AtomicFile::create(path).map_err(|e| BenchError::io(path, e))?;
    let mut w = csv::Writer::from_writer(&mut file);
    w.write_record(["path", "label", "group"]).map_err(csv_err)?;
    for r in rows {
        w.write_record([&r.path, &r.label, &r.group]).map_err(csv_err)?;
    }
    w.flush().map_err(|e| BenchError::io(path, e))?;
    drop(w);
    file.commit().map_err(|e| BenchError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_disjoint_and_styles_map_by_their_first_word() {
        let mut seen = std::collections::HashSet::new();
        for (_, gs) in GROOVE_FAMILIES {
            for g in *gs {
                assert!(seen.insert(*g), "{g} is in two families");
            }
        }
        assert_eq!(groove_family("bossanova"), Some("latin"));
        assert_eq!(groove_family("metronome"), None);
        assert_eq!(
            style_family("orchestral, ambient, electronic, rock"),
            Some("orchestral")
        );
        assert_eq!(style_family("tracker XM (chiptune)"), Some("chiptune-tracker"));
        assert_eq!(style_family("electronic, metal"), Some("electronic"));
        assert_eq!(style_family("misc. game music"), None);
    }

    #[test]
    fn labels_are_csv_quoted_only_where_needed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        let rows = [
            Labelled {
                path: "clips/a.wav".into(),
                label: "waltz".into(),
                group: "g1".into(),
            },
            Labelled {
                path: "clips/b, c.wav".into(),
                label: "jazz/swing".into(),
                group: "say \"hi\"".into(),
            },
        ];
        write_labels(&p, &rows).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "path,label,group\nclips/a.wav,waltz,g1\n\"clips/b, c.wav\",jazz/swing,\"say \"\"hi\"\"\"\n"
        );
        let back: Vec<Vec<String>> = csv::Reader::from_path(&p)
            .unwrap()
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        assert_eq!(back[1], ["clips/b, c.wav", "jazz/swing", "say \"hi\""]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");
    }
}
