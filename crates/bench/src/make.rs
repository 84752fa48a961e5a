//! `sampleid bench make`: a benchmark from the corpus's test split (or, to
//! choose thresholds, from its validation split).
//!
//! Tracks of the split are shuffled with the seed and divided into
//! references (indexed), negatives (never indexed; their queries measure false
//! accepts) and backgrounds (never indexed; the "new music" of sample-ID
//! queries). Noise and impulse responses come from the same split (with
//! synthetic ones added when the corpus has few), so nothing a model was
//! trained on appears in a query.
//!
//! Two suites of cells: `paper` (GraFPrint's noise and reverb cells,
//! NeuralSampleID's mixed pitch/tempo/speed cells) and `users` (what users
//! meet: clean, telephone, MP3, noisy and reverberant 10 s and 5 s clips, and
//! fixed pitch, tempo and speed changes of 10 s clips without background).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use sampleid_audio::{AudioConfig, decode_file};
use sampleid_corpus::{Entry, Kind, Split, manifest};
use sampleid_fsio::AtomicFile;
use sampleid_transform::{Chain, Resources, Rng, Transform, TransformError, synthetic};

use crate::BenchError;
use crate::spec::{Benchmark, Protocol, Query, Reference, Target};

/// Which cells to build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Suite {
    /// The published protocols' cells (GraFPrint, NeuralSampleID).
    Paper,
    /// The cells users meet (see the module documentation).
    Users,
    /// Both.
    #[default]
    All,
}

impl Suite {
    fn paper(self) -> bool {
        matches!(self, Suite::Paper | Suite::All)
    }

    fn users(self) -> bool {
        matches!(self, Suite::Users | Suite::All)
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct MakeOptions {
    /// Corpus directory (with manifest.csv).
    pub corpus: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    pub protocols: Vec<Protocol>,
    /// Which cells.
    pub suite: Suite,
    /// The corpus split the tracks, noises and impulse responses come from:
    /// test, or validation (to choose thresholds on).
    pub split: Split,
    pub references: usize,
    /// Negative tracks; `None`: every music track of the split that is neither
    /// a reference nor one of the 4 backgrounds.
    pub negatives: Option<usize>,
    /// Positive queries per (condition, length) cell.
    pub per_cell: usize,
    /// Negative queries per (condition, length) cell of the paper suite and of
    /// the users' sample-ID cells. The users' audio-ID cells take one negative
    /// query from every negative track.
    pub negatives_per_cell: usize,
    pub seed: u64,
    pub snrs_db: Vec<f64>,
    pub audio_id_lengths_s: Vec<f64>,
    pub sample_id_lengths_s: Vec<f64>,
    /// Target-to-background ratios of sample-ID mixes.
    pub tbrs_db: Vec<f64>,
    /// Query lengths of the users' audio-ID cells.
    pub user_audio_id_lengths_s: Vec<f64>,
    /// SNRs of the users' noise cells.
    pub user_snrs_db: Vec<f64>,
    /// Bitrate of the users' MP3 cell (kbit/s).
    pub user_mp3_kbps: u32,
    /// Query length of the users' sample-ID cells.
    pub user_sample_id_length_s: f64,
}

impl MakeOptions {
    /// The default benchmark: small enough to run in minutes on 2 cores.
    pub fn new(corpus: PathBuf, out: PathBuf) -> Self {
        Self {
            corpus,
            out,
            protocols: vec![Protocol::AudioId, Protocol::SampleId],
            suite: Suite::All,
            split: Split::Test,
            references: 100,
            negatives: Some(25),
            per_cell: 4,
            negatives_per_cell: 1,
            seed: 1,
            snrs_db: vec![0.0, 5.0, 10.0, 15.0, 20.0],
            audio_id_lengths_s: vec![1.0, 2.0, 3.0, 5.0],
            sample_id_lengths_s: vec![5.0, 7.0, 10.0, 15.0, 20.0],
            tbrs_db: vec![5.0, 0.0, -5.0],
            user_audio_id_lengths_s: vec![10.0, 5.0],
            user_snrs_db: vec![20.0, 10.0, 0.0],
            user_mp3_kbps: 32,
            user_sample_id_length_s: 10.0,
        }
    }
}

const RATE: u32 = 16_000;

/// Music tracks kept aside as the backgrounds of sample-ID mixes.
const BACKGROUNDS: usize = 4;

/// The users' sample-ID cells: condition, the transformation, and the
/// resulting time ratio (query / reference duration) and pitch shift.
pub fn user_sample_cells() -> Vec<(String, Transform, f64, f64)> {
    let mut cells = Vec::new();
    for st in [1.0, -1.0, 3.0, -3.0] {
        cells.push((
            format!("pitch {st:+.0} st"),
            Transform::PitchShift { semitones: st },
            1.0,
            st,
        ));
    }
    for rate in [0.7, 0.85, 1.15, 1.5] {
        cells.push((
            format!("tempo {rate}"),
            Transform::TimeStretch { rate },
            1.0 / rate,
            0.0,
        ));
    }
    for (pct, factor) in [(4, 1.04), (-4, 0.96), (10, 1.1), (-10, 0.9)] {
        cells.push((
            format!("speed {pct:+} %"),
            Transform::Speed { factor },
            1.0 / factor,
            12.0 * factor.log2(),
        ));
    }
    cells
}

/// Builds the benchmark; returns it (also written to `OUT/benchmark.json`).
pub fn make(opts: &MakeOptions, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Benchmark, BenchError> {
    let entries = manifest::read(&opts.corpus.join("manifest.csv"))?;
    let of_split = |k: Kind| -> Vec<&Entry> {
        let mut v: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.kind == k && e.split == opts.split)
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    };
    let split_name = match opts.split {
        Split::Train => "train",
        Split::Validation => "validation",
        Split::Test => "test",
    };
    let mut music = of_split(Kind::Music);
    let mut rng = Rng::new(opts.seed);
    rng.shuffle(&mut music);
    let n_negatives = opts
        .negatives
        .unwrap_or_else(|| music.len().saturating_sub(opts.references + BACKGROUNDS));
    let needed = opts.references + n_negatives + BACKGROUNDS;
    if music.len() < needed {
        return Err(BenchError::Corpus(format!(
            "the {split_name} split has {} music tracks; {} references + {n_negatives} negatives + {BACKGROUNDS} \
             backgrounds need {needed} (lower --references/--negatives, or build the whole corpus)",
            music.len(),
            opts.references,
        )));
    }
    if n_negatives == 0 && opts.negatives_per_cell > 0 {
        return Err(BenchError::Corpus(format!(
            "the {split_name} split has {} music tracks: none is left for negative queries after {} references \
             and {BACKGROUNDS} backgrounds (lower --references, or --negatives-per-cell 0)",
            music.len(),
            opts.references,
        )));
    }
    let (refs, rest) = music.split_at(opts.references);
    let (negs, rest) = rest.split_at(n_negatives);
    let backgrounds = &rest[..BACKGROUNDS];
    let noises: Vec<String> = of_split(Kind::Noise).iter().map(|e| e.path.clone()).collect();
    let irs: Vec<String> = of_split(Kind::Ir).iter().map(|e| e.path.clone()).collect();
    // Stems of the references' stem sets (tracker modules), for stem-subset queries.
    let mut stems: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for e in entries
        .iter()
        .filter(|e| e.kind == Kind::Stem && !e.stem_set.is_empty())
    {
        stems.entry(e.stem_set.as_str()).or_default().push(e);
    }

    std::fs::create_dir_all(opts.out.join("queries")).map_err(|e| BenchError::io(&opts.out, e))?;
    let references = link_all(&opts.corpus, &opts.out, "refs", refs)?;
    let negatives = link_all(&opts.corpus, &opts.out, "negatives", negs)?;

    // The users' cells draw from their own stream: they are the same whether
    // or not the paper's cells are made, and leave those as they were.
    let users_rng = rng.fork(2);
    let mut plan = Planner {
        rng: rng.fork(1),
        refs,
        negs,
        backgrounds,
        noises,
        irs,
        stems,
        queries: Vec::new(),
    };
    if opts.suite.paper() {
        for &p in &opts.protocols {
            match p {
                Protocol::AudioId => plan.audio_id(opts),
                Protocol::SampleId => plan.sample_id(opts),
                // Made from renders, not corpus excerpts: `versions::make_versions`.
                Protocol::VersionId => {}
            }
        }
    }
    if opts.suite.users() {
        plan.rng = users_rng;
        for &p in &opts.protocols {
            match p {
                Protocol::AudioId => plan.user_audio_id(opts),
                Protocol::SampleId => plan.user_sample_id(opts),
                Protocol::VersionId => {}
            }
        }
    }
    let mut queries = plan.queries;
    let sources: HashMap<&str, PathBuf> = references
        .iter()
        .chain(&negatives)
        .map(|r| (r.id.as_str(), opts.out.join(&r.path)))
        .collect();
    let repaired = render_all(&opts.corpus, &opts.out, &queries, &sources, progress)?;
    for fixed in repaired {
        if let Some(q) = queries.iter_mut().find(|q| q.id == fixed.id) {
            *q = fixed;
        }
    }
    let bench = Benchmark {
        version: Benchmark::VERSION,
        seed: opts.seed,
        sample_rate: RATE,
        segment_hop_s: 0.512,
        references,
        negatives,
        queries,
    };
    write_outputs(&opts.out, &bench)?;
    Ok(bench)
}

/// Links (or copies, where links are impossible) tracks into `OUT/SUB/ID.ext`.
fn link_all(corpus: &Path, out: &Path, sub: &str, tracks: &[&Entry]) -> Result<Vec<Reference>, BenchError> {
    let dir = out.join(sub);
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(&dir, e))?;
    let corpus_abs = std::fs::canonicalize(corpus).map_err(|e| BenchError::io(corpus, e))?;
    tracks
        .iter()
        .map(|e| {
            let ext = Path::new(&e.path)
                .extension()
                .and_then(|x| x.to_str())
                .unwrap_or("audio");
            let rel = format!("{sub}/{}.{ext}", e.id);
            let link = out.join(&rel);
            let target = corpus_abs.join(&e.path);
            if std::fs::symlink_metadata(&link).is_err() {
                #[cfg(unix)]
                let linked = std::os::unix::fs::symlink(&target, &link);
                #[cfg(not(unix))]
                let linked: std::io::Result<()> = Err(std::io::Error::other("no symlinks"));
                if linked.is_err() {
                    // A copy appears under its name only once complete, so a
                    // re-run never keeps a truncated one.
                    let mut src = std::fs::File::open(&target).map_err(|err| BenchError::io(&target, err))?;
                    let mut file = AtomicFile::create(&link).map_err(|err| BenchError::io(&link, err))?;
                    std::io::copy(&mut src, &mut file).map_err(|err| BenchError::io(&link, err))?;
                    file.commit().map_err(|err| BenchError::io(&link, err))?;
                }
            }
            Ok(Reference {
                id: e.id.clone(),
                path: rel,
                source: e.path.clone(),
                duration_s: e.duration_s,
            })
        })
        .collect()
}

struct Planner<'a> {
    rng: Rng,
    refs: &'a [&'a Entry],
    negs: &'a [&'a Entry],
    backgrounds: &'a [&'a Entry],
    noises: Vec<String>,
    irs: Vec<String>,
    stems: HashMap<&'a str, Vec<&'a Entry>>,
    queries: Vec<Query>,
}

impl Planner<'_> {
    fn next_id(&self, protocol: Protocol) -> String {
        let prefix = match protocol {
            Protocol::AudioId => "a",
            Protocol::SampleId => "s",
            Protocol::VersionId => "v",
        };
        let n = self.queries.iter().filter(|q| q.protocol == protocol).count();
        format!("{prefix}{n:05}")
    }

    fn noise(&mut self) -> String {
        // Real noise when the corpus has it; one in three synthetic, for variety.
        if self.noises.is_empty() || self.rng.chance(1.0 / 3.0) {
            let kind = if self.rng.chance(0.5) { "pink" } else { "white" };
            format!("{kind}:{}", self.rng.next_u64() % 1_000_000)
        } else {
            self.rng.choose(&self.noises).clone()
        }
    }

    fn ir(&mut self) -> String {
        if self.irs.is_empty() || self.rng.chance(0.5) {
            format!(
                "room:{:.2}:{}",
                self.rng.uniform(0.3, 1.2),
                self.rng.next_u64() % 1_000_000
            )
        } else {
            self.rng.choose(&self.irs).clone()
        }
    }

    /// A start so that `len` seconds fit in a track of `duration` seconds.
    fn start(&mut self, duration: f64, len: f64) -> f64 {
        let room = (duration - len - 0.5).max(0.0);
        (self.rng.uniform(0.0, room) * 1000.0).round() / 1000.0
    }

    /// GraFPrint: excerpts under noise at each SNR, with and without reverb.
    fn audio_id(&mut self, opts: &MakeOptions) {
        let mut turn = 0usize;
        for reverb in [false, true] {
            for &snr in &opts.snrs_db {
                for &len in &opts.audio_id_lengths_s {
                    let condition = if reverb {
                        format!("noise {snr:.0} dB + reverb")
                    } else {
                        format!("noise {snr:.0} dB")
                    };
                    for i in 0..opts.per_cell + opts.negatives_per_cell {
                        let negative = i >= opts.per_cell;
                        let pool = if negative { self.negs } else { self.refs };
                        let src = pool[turn % pool.len()];
                        turn += 1;
                        let start = self.start(src.duration_s, len);
                        let mut chain = vec![Transform::Crop {
                            start_s: start,
                            duration_s: len,
                        }];
                        if reverb {
                            chain.push(Transform::Reverb { ir: self.ir() });
                        }
                        let noise = self.noise();
                        let noise_start = (self.rng.uniform(0.0, 10.0) * 100.0).round() / 100.0;
                        chain.push(Transform::Noise {
                            snr_db: snr,
                            source: noise,
                            source_start_s: noise_start,
                        });
                        self.push_plain(
                            Protocol::AudioId,
                            src,
                            &condition,
                            len,
                            negative,
                            start,
                            chain,
                            1.0,
                            0.0,
                        );
                    }
                }
            }
        }
    }

    /// NeuralSampleID: pitch / tempo / speed changes, mixed under other music.
    fn sample_id(&mut self, opts: &MakeOptions) {
        let families = ["pitch", "stretch", "speed", "pitch+stretch"];
        let mut turn = 0usize;
        for family in families {
            for &tbr in &opts.tbrs_db {
                for &len in &opts.sample_id_lengths_s {
                    let condition = format!("{family}, TBR {tbr:.0} dB");
                    for i in 0..opts.per_cell + opts.negatives_per_cell {
                        let negative = i >= opts.per_cell;
                        let pool = if negative { self.negs } else { self.refs };
                        let src = pool[turn % pool.len()];
                        turn += 1;
                        self.sample_query(src, family, tbr, len, negative, condition.clone(), None);
                    }
                }
            }
        }
        // Two samples in one query: two references, each the other's background.
        for &len in &opts.sample_id_lengths_s {
            for _ in 0..opts.per_cell {
                let a = self.refs[turn % self.refs.len()];
                let b = self.refs[(turn + 1 + self.rng.below(self.refs.len() - 1)) % self.refs.len()];
                turn += 1;
                self.sample_query(a, "pitch", 0.0, len, false, "two references, TBR 0 dB".into(), Some(b));
            }
        }
    }

    /// A start in `src` and the chain that cuts enough source for the
    /// transformed material to fill `len` seconds, applies `time` (whose
    /// time ratio is `time_ratio`) and cuts the query.
    fn transformed_excerpt(
        &mut self,
        src: &Entry,
        time: Vec<Transform>,
        time_ratio: f64,
        len: f64,
    ) -> (f64, Vec<Transform>) {
        let src_len = ((len / time_ratio) * 1000.0).ceil() / 1000.0;
        let start = self.start(src.duration_s, src_len);
        let mut chain = vec![Transform::Crop {
            start_s: start,
            duration_s: src_len,
        }];
        chain.extend(time);
        chain.push(Transform::Crop {
            start_s: 0.0,
            duration_s: len,
        });
        (start, chain)
    }

    /// The users' audio-ID cells: clean, telephone, MP3, noise and reverb,
    /// at each of the users' lengths. Every negative track gives one
    /// negative query per cell.
    fn user_audio_id(&mut self, opts: &MakeOptions) {
        #[derive(Clone, Copy)]
        enum Kind {
            Clean,
            Telephone,
            Mp3(u32),
            Noise(f64),
            Reverb,
        }
        let mut kinds = vec![
            ("clean".to_string(), Kind::Clean),
            ("telephone".to_string(), Kind::Telephone),
            (
                format!("mp3 {} kbit/s", opts.user_mp3_kbps),
                Kind::Mp3(opts.user_mp3_kbps),
            ),
        ];
        for &snr in &opts.user_snrs_db {
            // Not "noise N dB": that is a paper cell, also at 5 s.
            kinds.push((format!("noise {snr:.0} dB (users)"), Kind::Noise(snr)));
        }
        kinds.push(("reverb".to_string(), Kind::Reverb));
        let mut turn = 0usize;
        for (condition, kind) in kinds {
            for &len in &opts.user_audio_id_lengths_s {
                let sources: Vec<(&Entry, bool)> = (0..opts.per_cell)
                    .map(|i| (self.refs[(turn + i) % self.refs.len()], false))
                    .chain(self.negs.iter().map(|&n| (n, true)))
                    .collect();
                turn += opts.per_cell;
                for (src, negative) in sources {
                    let start = self.start(src.duration_s, len);
                    let mut chain = vec![Transform::Crop {
                        start_s: start,
                        duration_s: len,
                    }];
                    match kind {
                        Kind::Clean => {}
                        Kind::Telephone => {
                            chain.push(Transform::BandPass {
                                low_hz: 300.0,
                                high_hz: 3400.0,
                            });
                            chain.push(Transform::Downsample { rate_hz: 8000 });
                        }
                        Kind::Mp3(kbps) => chain.push(Transform::Mp3 { kbps }),
                        Kind::Noise(snr_db) => {
                            let source = self.noise();
                            let source_start_s = (self.rng.uniform(0.0, 10.0) * 100.0).round() / 100.0;
                            chain.push(Transform::Noise {
                                snr_db,
                                source,
                                source_start_s,
                            });
                        }
                        Kind::Reverb => {
                            let ir = self.ir();
                            chain.push(Transform::Reverb { ir });
                        }
                    }
                    self.push_plain(
                        Protocol::AudioId,
                        src,
                        &condition,
                        len,
                        negative,
                        start,
                        chain,
                        1.0,
                        0.0,
                    );
                }
            }
        }
    }

    /// The users' sample-ID cells: one fixed pitch, tempo or speed change of
    /// a 10 s excerpt each, without background music.
    fn user_sample_id(&mut self, opts: &MakeOptions) {
        let len = opts.user_sample_id_length_s;
        let mut turn = 0usize;
        for (condition, transform, time_ratio, pitch) in user_sample_cells() {
            for i in 0..opts.per_cell + opts.negatives_per_cell {
                let negative = i >= opts.per_cell;
                let pool = if negative { self.negs } else { self.refs };
                let src = pool[turn % pool.len()];
                turn += 1;
                let (start, chain) = self.transformed_excerpt(src, vec![transform.clone()], time_ratio, len);
                self.push_plain(
                    Protocol::SampleId,
                    src,
                    &condition,
                    len,
                    negative,
                    start,
                    chain,
                    time_ratio,
                    pitch,
                );
            }
        }
    }

    /// Adds a query cut from `src` alone (no stems, no second reference).
    #[allow(clippy::too_many_arguments)]
    fn push_plain(
        &mut self,
        protocol: Protocol,
        src: &Entry,
        condition: &str,
        len: f64,
        negative: bool,
        start: f64,
        chain: Vec<Transform>,
        time_ratio: f64,
        pitch_shift: f64,
    ) {
        let targets = if negative {
            vec![]
        } else {
            vec![Target {
                reference: src.id.clone(),
                reference_start_s: start,
                query_start_s: 0.0,
                time_ratio,
                pitch_shift,
            }]
        };
        let id = self.next_id(protocol);
        self.queries.push(Query {
            path: format!("queries/{id}.wav"),
            id,
            protocol,
            condition: condition.to_string(),
            length_s: len,
            negative,
            targets,
            source: src.id.clone(),
            source_stems: vec![],
            transforms: Chain(chain),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn sample_query(
        &mut self,
        src: &Entry,
        family: &str,
        tbr: f64,
        len: f64,
        negative: bool,
        condition: String,
        second: Option<&Entry>,
    ) {
        let signed = |rng: &mut Rng, lo: f64, hi: f64| {
            let v = rng.uniform(lo, hi);
            if rng.chance(0.5) { v } else { -v }
        };
        let mut time = vec![];
        let mut time_ratio = 1.0;
        let mut pitch = 0.0;
        if family.contains("pitch") {
            pitch = (signed(&mut self.rng, 1.0, 3.0) * 100.0).round() / 100.0;
            time.push(Transform::PitchShift { semitones: pitch });
        }
        if family.contains("stretch") {
            let rate = (2f64.powf(signed(&mut self.rng, 0.07, 0.32)) * 1000.0).round() / 1000.0; // 0.80–0.95, 1.05–1.25
            time.push(Transform::TimeStretch { rate });
            time_ratio /= rate;
        }
        if family == "speed" {
            let factor = (2f64.powf(signed(&mut self.rng, 0.04, 0.14)) * 1000.0).round() / 1000.0; // 0.91–0.97, 1.03–1.10
            time.push(Transform::Speed { factor });
            time_ratio /= factor;
            pitch = 12.0 * factor.log2();
        }
        let (start, mut chain) = self.transformed_excerpt(src, time, time_ratio, len);
        // Half of the queries from references with stems use a subset of the stems.
        let mut source_stems = vec![];
        if !src.stem_set.is_empty()
            && let Some(set) = self.stems.get(src.stem_set.as_str())
            && set.len() >= 2
            && self.rng.chance(0.5)
        {
            let mut pick: Vec<&Entry> = set.clone();
            self.rng.shuffle(&mut pick);
            let k = 1 + self.rng.below(set.len() - 1);
            source_stems = pick[..k].iter().map(|e| e.path.clone()).collect();
            source_stems.sort();
        }
        let (background, bg_start) = match second {
            Some(b) => (b.path.clone(), self.start(b.duration_s, len)),
            None => {
                let b = *self.rng.choose(self.backgrounds);
                (b.path.clone(), self.start(b.duration_s, len))
            }
        };
        chain.push(Transform::Mix {
            tbr_db: tbr,
            source: background,
            source_start_s: bg_start,
        });
        let mut targets = vec![];
        if !negative {
            targets.push(Target {
                reference: src.id.clone(),
                reference_start_s: start,
                query_start_s: 0.0,
                time_ratio,
                pitch_shift: pitch,
            });
        }
        if let Some(b) = second {
            targets.push(Target {
                reference: b.id.clone(),
                reference_start_s: bg_start,
                query_start_s: 0.0,
                time_ratio: 1.0,
                pitch_shift: 0.0,
            });
        }
        let id = self.next_id(Protocol::SampleId);
        self.queries.push(Query {
            path: format!("queries/{id}.wav"),
            id,
            protocol: Protocol::SampleId,
            condition,
            length_s: len,
            negative,
            targets,
            source: src.id.clone(),
            source_stems,
            transforms: Chain(chain),
        });
    }
}

/// Corpus files (decoded to 16 kHz, cached) and synthetic signals.
struct CorpusResources<'a> {
    corpus: &'a Path,
    cache: &'a Mutex<HashMap<String, std::sync::Arc<Vec<f32>>>>,
}

impl Resources for CorpusResources<'_> {
    fn load(&mut self, id: &str) -> Result<Vec<f32>, TransformError> {
        if let Some(s) = synthetic(id, RATE) {
            return s;
        }
        if let Some(hit) = self.cache.lock().expect("cache lock").get(id) {
            return Ok(hit.as_ref().clone());
        }
        let d = decode_file(&self.corpus.join(id), &AudioConfig::default()).map_err(|e| TransformError::Resource {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        let mut cache = self.cache.lock().expect("cache lock");
        // Keep noises and IRs (short); long music is decoded again when needed.
        if d.samples.len() < 120 * RATE as usize {
            cache.insert(id.to_string(), std::sync::Arc::new(d.samples.clone()));
        }
        Ok(d.samples)
    }
}

/// Applies a query's chain; when a stretch it needs is silent (a quiet
/// passage of a noise file, a silent intro), repairs the query and tries
/// again: a silent background becomes seeded pink noise, a silent excerpt
/// moves 7 s later (its target start too; past the end, back to the start,
/// until the whole source has been tried). Returns the audio and, when
/// repaired, the query as it was finally made.
fn apply_with_repairs(
    q: &Query,
    audio: &[f32],
    res: &mut CorpusResources,
) -> Result<(Vec<f32>, Option<Query>), BenchError> {
    let mut query = q.clone();
    let duration = audio.len() as f64 / RATE as f64;
    let tries = 8u64.max((duration / 7.0).ceil() as u64 + 2);
    for attempt in 0..tries {
        let applied = query.transforms.apply(audio, RATE, res).and_then(|y| {
            // Chains without noise or mixing have no level check of their own:
            // a query of silence (or of the rounding dust of a reverb of it) is
            // a silent target too: below −120 dBFS of power, or a peak that the
            // engine would refuse as silent once written as 16-bit samples
            // (twice its threshold: rounding to 16 bits can lower a peak).
            if sampleid_transform::power(&y) < 1e-12 || sampleid_audio::peak(&y) < 2.0 * sampleid_audio::SILENCE_PEAK {
                Err(TransformError::Silent("target"))
            } else {
                Ok(y)
            }
        });
        match applied {
            Ok(y) => return Ok((y, (attempt > 0).then_some(query))),
            Err(TransformError::Silent("background")) => {
                for t in query.transforms.0.iter_mut() {
                    if let Transform::Noise { source, .. } | Transform::Mix { source, .. } = t {
                        *source = format!("pink:{}", 7919 * (attempt + 1) + q.id.len() as u64);
                    }
                }
                for t in query.targets.iter_mut().skip(1) {
                    t.reference.clear();
                }
                query.targets.retain(|t| !t.reference.is_empty());
            }
            Err(TransformError::Silent("target")) => {
                if let Some(Transform::Crop { start_s, duration_s }) = query.transforms.0.first_mut() {
                    let next = *start_s + 7.0;
                    *start_s = if next + *duration_s <= duration { next } else { 0.0 };
                    let new_start = *start_s;
                    if let Some(t) = query.targets.first_mut() {
                        t.reference_start_s = new_start;
                    }
                }
            }
            Err(e) => {
                return Err(BenchError::Query {
                    id: q.id.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Err(BenchError::Query {
        id: q.id.clone(),
        reason: format!("its source {} stays silent wherever it is cut", q.source),
    })
}

/// Renders every query, grouped by source so each track is decoded once;
/// returns the queries that had to be repaired (see [`apply_with_repairs`]).
fn render_all(
    corpus: &Path,
    out: &Path,
    queries: &[Query],
    sources: &HashMap<&str, PathBuf>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Query>, BenchError> {
    let mut by_source: HashMap<(&str, &[String]), Vec<&Query>> = HashMap::new();
    for q in queries {
        by_source
            .entry((q.source.as_str(), q.source_stems.as_slice()))
            .or_default()
            .push(q);
    }
    let mut groups: Vec<_> = by_source.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let cache = Mutex::new(HashMap::new());
    let done = std::sync::atomic::AtomicUsize::new(0);
    let source_path = |q: &Query| -> Result<&PathBuf, BenchError> {
        sources
            .get(q.source.as_str())
            .ok_or_else(|| BenchError::Corpus(format!("no file for source {}", q.source)))
    };
    let repaired = Mutex::new(Vec::new());
    groups
        .par_iter()
        .try_for_each(|((_, stems), qs)| -> Result<(), BenchError> {
            // Every query is rendered again on a re-run (deterministic), so the
            // record of repairs always matches the files.
            let audio = if stems.is_empty() {
                decode_file(source_path(qs[0])?, &AudioConfig::default())?.samples
            } else {
                let mut sum: Vec<f32> = Vec::new();
                for s in stems.iter() {
                    let x = decode_file(&corpus.join(s), &AudioConfig::default())?.samples;
                    if sum.len() < x.len() {
                        sum.resize(x.len(), 0.0);
                    }
                    for (a, b) in sum.iter_mut().zip(&x) {
                        *a += b;
                    }
                }
                sum
            };
            let mut res = CorpusResources { corpus, cache: &cache };
            for q in qs {
                let (mut y, fixed) = apply_with_repairs(q, &audio, &mut res)?;
                if let Some(f) = fixed {
                    repaired.lock().expect("lock").push(f);
                }
                sampleid_transform::level::normalise_peak(&mut y, 0.99);
                write_wav(&out.join(&q.path), &y)?;
            }
            let n = done.fetch_add(qs.len(), std::sync::atomic::Ordering::Relaxed) + qs.len();
            progress(n, queries.len());
            Ok(())
        })?;
    Ok(repaired.into_inner().expect("lock"))
}

pub(crate) fn write_wav(path: &Path, samples: &[f32]) -> Result<(), BenchError> {
    let mut file = AtomicFile::create(path).map_err(|e| BenchError::io(path, e))?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let err = |e: hound::Error| BenchError::io(path, std::io::Error::other(e.to_string()));
    let mut w = hound::WavWriter::new(&mut file, spec).map_err(err)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .map_err(err)?;
    }
    w.finalize().map_err(err)?;
    file.commit().map_err(|e| BenchError::io(path, e))
}

pub(crate) fn write_outputs(out: &Path, bench: &Benchmark) -> Result<(), BenchError> {
    let json = serde_json::to_string_pretty(bench).map_err(|e| BenchError::Format(e.to_string()))?;
    let p = out.join("benchmark.json");
    sampleid_fsio::atomic_write(&p, json.as_bytes()).map_err(|e| BenchError::io(&p, e))?;
    // One row per query with its first target (empty for a negative).
    let p = out.join("queries.csv");
    let csv_err = |e: csv::Error| BenchError::Format(format!("{}: {e}", p.display()));
    let mut file = AtomicFile::create(&p).map_err(|e| BenchError::io(&p, e))?;
    let mut w = csv::Writer::from_writer(&mut file);
    w.write_record([
        "id",
        "protocol",
        "condition",
        "length_s",
        "negative",
        "reference",
        "reference_start_s",
        "query_start_s",
        "time_ratio",
        "pitch_shift",
        "path",
    ])
    .map_err(csv_err)?;
    for q in &bench.queries {
        let t = q.targets.first();
        w.write_record([
            q.id.clone(),
            q.protocol.name().to_string(),
            q.condition.clone(),
            q.length_s.to_string(),
            q.negative.to_string(),
            t.map(|t| t.reference.clone()).unwrap_or_default(),
            t.map(|t| t.reference_start_s.to_string()).unwrap_or_default(),
            t.map(|t| t.query_start_s.to_string()).unwrap_or_default(),
            t.map(|t| format!("{:.4}", t.time_ratio)).unwrap_or_default(),
            t.map(|t| format!("{:.3}", t.pitch_shift)).unwrap_or_default(),
            q.path.clone(),
        ])
        .map_err(csv_err)?;
    }
    w.flush().map_err(|e| BenchError::io(&p, e))?;
    drop(w);
    file.commit().map_err(|e| BenchError::io(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, duration_s: f64) -> Entry {
        Entry {
            id: id.into(),
            kind: Kind::Music,
            package: "p".into(),
            path: format!("music/{id}.ogg"),
            duration_s,
            licence: "CC0".into(),
            split: Split::Test,
            group: id.into(),
            stem_set: String::new(),
            stem: String::new(),
            style: String::new(),
            origin: "file".into(),
            sha256: String::new(),
        }
    }

    /// The users' cells planned for 3 references and 5 negatives, 2 per cell.
    fn user_plan() -> Vec<Query> {
        let refs: Vec<Entry> = (0..3).map(|i| entry(&format!("r{i}"), 60.0)).collect();
        let negs: Vec<Entry> = (0..5).map(|i| entry(&format!("n{i}"), 60.0)).collect();
        let bgs: Vec<Entry> = (0..4).map(|i| entry(&format!("b{i}"), 60.0)).collect();
        let (refs, negs, bgs): (Vec<&Entry>, Vec<&Entry>, Vec<&Entry>) =
            (refs.iter().collect(), negs.iter().collect(), bgs.iter().collect());
        let mut opts = MakeOptions::new("c".into(), "o".into());
        opts.per_cell = 2;
        opts.negatives_per_cell = 1;
        let mut plan = Planner {
            rng: Rng::new(7),
            refs: &refs,
            negs: &negs,
            backgrounds: &bgs,
            noises: vec![],
            irs: vec![],
            stems: HashMap::new(),
            queries: Vec::new(),
        };
        plan.user_audio_id(&opts);
        plan.user_sample_id(&opts);
        plan.queries
    }

    #[test]
    fn a_silent_excerpt_moves_until_it_finds_music_even_without_noise() {
        // 20 s of a tone, then 60 s of digital silence (a long fade-out, as
        // some game tracks end); a clean 5 s query cut at 30 s.
        let audio: Vec<f32> = (0..80 * RATE as usize)
            .map(|i| {
                if i < 20 * RATE as usize {
                    (i as f32 * 0.05).sin() * 0.5
                } else {
                    0.0
                }
            })
            .collect();
        let q = Query {
            id: "a00001".into(),
            path: "queries/a00001.wav".into(),
            protocol: Protocol::AudioId,
            condition: "clean".into(),
            length_s: 5.0,
            negative: false,
            targets: vec![Target {
                reference: "r".into(),
                reference_start_s: 30.0,
                query_start_s: 0.0,
                time_ratio: 1.0,
                pitch_shift: 0.0,
            }],
            source: "r".into(),
            source_stems: vec![],
            transforms: Chain(vec![Transform::Crop {
                start_s: 30.0,
                duration_s: 5.0,
            }]),
        };
        let cache = Mutex::new(HashMap::new());
        let mut res = CorpusResources {
            corpus: Path::new("."),
            cache: &cache,
        };
        let (y, fixed) = apply_with_repairs(&q, &audio, &mut res).unwrap();
        let fixed = fixed.expect("repaired");
        // 30 → 37 → … → 72 → (past the end) 0.
        assert_eq!(fixed.targets[0].reference_start_s, 0.0);
        assert!(sampleid_transform::power(&y) > 0.01);
        // A source silent everywhere is an error naming it.
        let e = apply_with_repairs(&q, &vec![0.0; audio.len()], &mut res).unwrap_err();
        assert!(e.to_string().contains("its source r stays silent"), "{e}");
        // So is one whose quiet passage is one LSB of dither (−90 dBFS): the
        // engine refuses such a clip as silent, so it moves on to the music.
        let dust: Vec<f32> = audio
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v == 0.0 {
                    if i % 3 == 0 { 1.0 / 32_768.0 } else { -1.0 / 32_768.0 }
                } else {
                    v
                }
            })
            .collect();
        let (y, fixed) = apply_with_repairs(&q, &dust, &mut res).unwrap();
        assert_eq!(fixed.expect("repaired").targets[0].reference_start_s, 0.0);
        assert!(sampleid_audio::peak(&y) > 0.1);
    }

    #[test]
    fn users_audio_id_cells_exist_with_every_negative_track() {
        let queries = user_plan();
        let conditions = [
            "clean",
            "telephone",
            "mp3 32 kbit/s",
            "noise 20 dB (users)",
            "noise 10 dB (users)",
            "noise 0 dB (users)",
            "reverb",
        ];
        for c in conditions {
            for len in [10.0, 5.0] {
                let cell: Vec<&Query> = queries
                    .iter()
                    .filter(|q| q.protocol == Protocol::AudioId && q.condition == c && q.length_s == len)
                    .collect();
                let pos: Vec<&&Query> = cell.iter().filter(|q| !q.negative).collect();
                let neg: Vec<&&Query> = cell.iter().filter(|q| q.negative).collect();
                assert_eq!((pos.len(), neg.len()), (2, 5), "{c} {len}");
                // Every negative track once per cell.
                let mut sources: Vec<&str> = neg.iter().map(|q| q.source.as_str()).collect();
                sources.sort();
                assert_eq!(sources, ["n0", "n1", "n2", "n3", "n4"]);
                for q in pos {
                    let t = &q.targets[0];
                    assert_eq!((t.time_ratio, t.pitch_shift, t.query_start_s), (1.0, 0.0, 0.0));
                    assert_eq!(
                        q.transforms.0[0],
                        Transform::Crop {
                            start_s: t.reference_start_s,
                            duration_s: len
                        }
                    );
                }
                for q in &cell {
                    let rest = &q.transforms.0[1..];
                    let ok = match c {
                        "clean" => rest.is_empty(),
                        "telephone" => {
                            rest == [
                                Transform::BandPass {
                                    low_hz: 300.0,
                                    high_hz: 3400.0,
                                },
                                Transform::Downsample { rate_hz: 8000 },
                            ]
                        }
                        "mp3 32 kbit/s" => rest == [Transform::Mp3 { kbps: 32 }],
                        "reverb" => matches!(rest, [Transform::Reverb { .. }]),
                        _ => {
                            matches!(rest, [Transform::Noise { snr_db, .. }] if c.starts_with(&format!("noise {snr_db:.0} dB")))
                        }
                    };
                    assert!(ok, "{c}: {:?}", q.transforms);
                }
            }
        }
        let n = queries.iter().filter(|q| q.protocol == Protocol::AudioId).count();
        assert_eq!(n, conditions.len() * 2 * (2 + 5));
    }

    #[test]
    fn users_sample_id_cells_have_exact_targets_and_no_background() {
        let queries = user_plan();
        let expect = [
            ("pitch +1 st", 1.0, 1.0),
            ("pitch -1 st", 1.0, -1.0),
            ("pitch +3 st", 1.0, 3.0),
            ("pitch -3 st", 1.0, -3.0),
            ("tempo 0.7", 1.0 / 0.7, 0.0),
            ("tempo 0.85", 1.0 / 0.85, 0.0),
            ("tempo 1.15", 1.0 / 1.15, 0.0),
            ("tempo 1.5", 1.0 / 1.5, 0.0),
            ("speed +4 %", 1.0 / 1.04, 12.0 * 1.04f64.log2()),
            ("speed -4 %", 1.0 / 0.96, 12.0 * 0.96f64.log2()),
            ("speed +10 %", 1.0 / 1.1, 12.0 * 1.1f64.log2()),
            ("speed -10 %", 1.0 / 0.9, 12.0 * 0.9f64.log2()),
        ];
        let sample: Vec<&Query> = queries.iter().filter(|q| q.protocol == Protocol::SampleId).collect();
        assert_eq!(sample.len(), expect.len() * 3);
        for (c, ratio, pitch) in expect {
            let cell: Vec<&&Query> = sample.iter().filter(|q| q.condition == c).collect();
            assert_eq!(cell.len(), 3, "{c}");
            assert_eq!(cell.iter().filter(|q| q.negative).count(), 1, "{c}");
            for q in cell {
                assert_eq!(q.length_s, 10.0);
                assert!(
                    !q.transforms.0.iter().any(|t| matches!(t, Transform::Mix { .. })),
                    "{c}: {:?}",
                    q.transforms
                );
                // The chain's own time scale and pitch agree with the declared ones.
                assert!((q.transforms.time_scale() - ratio).abs() < 1e-12, "{c}");
                assert!((q.transforms.semitones() - pitch).abs() < 1e-12, "{c}");
                let Transform::Crop { start_s, duration_s } = q.transforms.0[0] else {
                    panic!("{c}: {:?}", q.transforms)
                };
                // Enough source is cut to fill the 10 s after the change.
                assert!(duration_s * ratio >= 10.0 - 1e-9, "{c}");
                assert_eq!(
                    q.transforms.0.last(),
                    Some(&Transform::Crop {
                        start_s: 0.0,
                        duration_s: 10.0
                    })
                );
                if let Some(t) = q.targets.first() {
                    assert_eq!((t.reference_start_s, t.query_start_s), (start_s, 0.0), "{c}");
                    assert!((t.time_ratio - ratio).abs() < 1e-12 && (t.pitch_shift - pitch).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn queries_csv_has_one_row_per_query_with_its_first_target() {
        let query = |id: &str, condition: &str, targets: Vec<Target>| Query {
            id: id.into(),
            path: format!("queries/{id}.wav"),
            protocol: Protocol::SampleId,
            condition: condition.into(),
            length_s: 5.0,
            negative: targets.is_empty(),
            targets,
            source: "r1".into(),
            source_stems: Vec::new(),
            transforms: Chain::default(),
        };
        let bench = Benchmark {
            version: Benchmark::VERSION,
            seed: 1,
            sample_rate: RATE,
            segment_hop_s: 0.5,
            references: Vec::new(),
            negatives: Vec::new(),
            queries: vec![
                query(
                    "q1",
                    "pitch, TBR 0 dB",
                    vec![Target {
                        reference: "r1".into(),
                        reference_start_s: 12.5,
                        query_start_s: 0.0,
                        time_ratio: 1.0 / 1.06,
                        pitch_shift: 1.0,
                    }],
                ),
                query("q2", "clean", Vec::new()),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        write_outputs(dir.path(), &bench).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("queries.csv")).unwrap(),
            "id,protocol,condition,length_s,negative,reference,reference_start_s,query_start_s,time_ratio,pitch_shift,path\n\
             q1,sample-id,\"pitch, TBR 0 dB\",5,false,r1,12.5,0,0.9434,1.000,queries/q1.wav\n\
             q2,sample-id,clean,5,true,,,,,,queries/q2.wav\n"
        );
        assert_eq!(Benchmark::load(dir.path()).unwrap(), bench);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["benchmark.json", "queries.csv"]);
    }
}
