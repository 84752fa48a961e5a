//! Command-line interface definitions. Without the `lab` feature the
//! corpus, training and benchmark-building commands are left out.
#![cfg_attr(not(feature = "lab"), allow(dead_code))]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sampleid: which recorded music does this audio contain?
///
/// Audio identification (a noisy clip → its song), sample identification (a
/// track → the records it sampled, through pitch/tempo changes and mixing) and
/// audio matching (passages where two recordings play the same music).
#[derive(Debug, Parser)]
#[command(name = "sampleid", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). Logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Configuration file (TOML); missing settings take the published defaults.
    /// `sampleid config` prints every setting.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Encoder weights (`NAME.safetensors` with `NAME.json` beside it) instead of
    /// the built-in model; `SAMPLEID_MODEL` does the same.
    #[arg(long, global = true, value_name = "FILE")]
    pub model: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute features of audio files and write them as NumPy .npy (float32).
    ///
    /// Shapes (rows are time):
    ///   mel       (frames, 64)        log-mel in dB, 31.25 frames/s (hop 512 at 16 kHz)
    ///   segments  (n, 64, 128)        encoder inputs: 4.08 s windows every 0.512 s,
    ///                                 mel-major, min-max normalised to [0, 1]
    ///   chroma    (frames, 12)        ℓ2-normalised chroma, 10 frames/s, bin 0 = C
    ///   cens      (frames, 12)        CENS, 1 frame/s
    ///   track     (1, 113)            whole-track descriptor: means and variances of
    ///                                 20 MFCC, 20 delta-MFCC, 12 chroma, centroid,
    ///                                 roll-off, flatness, zero-crossing rate; tempo
    /// Frame t of mel is centred on t × 32 ms.
    #[command(verbatim_doc_comment)]
    Features(FeaturesArgs),

    /// Decode files completely and report their format, duration and level;
    /// damaged files are reported with the reason.
    Info(InfoArgs),

    /// Print the effective configuration (defaults merged with --config) as TOML.
    Config,

    /// Neural fingerprints of audio files: one L2-normalised 128-d vector per
    /// 4.08 s segment, every 0.512 s, written as NumPy .npy (n, 128) float32.
    Fingerprint(FingerprintArgs),

    /// Show the encoder in use (built-in or --model): version, sizes, training facts.
    Model(ModelArgs),

    /// Index audio files and directories (recursively) into a library (--db DIR).
    /// Content already indexed (same bytes) is skipped; safe to interrupt and re-run.
    Index(IndexArgs),

    /// Which songs of the library do these clips contain, where, and how changed.
    ///
    /// With --json, one line per file in input order:
    /// {"query": FILE, "duration_s": S, "matches": [{"reference", "score",
    ///  "query_start", "reference_start", "time_ratio", "pitch_shift",
    ///  "song_id", "reference_duration"}]} (best first, [] for no match;
    ///  times in seconds; time_ratio and pitch_shift null when unknown),
    /// or {"query": FILE, "error": REASON}.
    #[command(verbatim_doc_comment)]
    Query(QueryArgs),

    /// Passages of the library that play the same music as a clip, even in
    /// another performance, key or tempo (audio matching on CENS chroma
    /// features; best for 10–30 s clips).
    ///
    /// With --json, one line per file in input order:
    /// {"query": FILE, "duration_s": S, "matches": [{"reference", "song_id",
    ///  "start", "end", "cost", "tempo_factor", "pitch_shift"}]} (cheapest first;
    /// times in seconds of the reference, tempo_factor = query tempo / reference
    /// tempo, pitch_shift in semitones), or {"query": FILE, "error": REASON}.
    #[command(verbatim_doc_comment)]
    Match(MatchArgs),

    /// What kind of music a track is: GraphSAGE on a k-nearest-neighbour graph
    /// of tracks (whole-track features), trained on your labels.
    #[command(subcommand)]
    Genre(GenreCommand),

    /// Serve the library over HTTP: the JSON API under /v1 (OpenAPI description
    /// at /v1/openapi.json) and a web page at / to drop, choose or record a clip.
    ///
    /// Adding and deleting songs needs a bearer token: SAMPLEID_TOKEN or
    /// [serve] token (at least 16 characters). On a loopback address without one,
    /// a random token is printed at start; on any other address a writable server
    /// refuses to start without one (use --read-only to serve queries only).
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),

    /// Align two recordings of the same music: the DTW warping path between
    /// them on chroma features (which moment of A is which moment of B).
    ///
    /// With --json: {"a", "b", "rate", "cost", "mean_cost", "path": [[a_s, b_s], …]}.
    /// --plot draws the cost matrix with the path over it (axes in seconds).
    #[command(verbatim_doc_comment)]
    Align(AlignArgs),

    /// Remove songs from a library, by path as indexed or by id (see `list`).
    ///
    /// A deleted song's rows stay in the library's files (`stats` counts
    /// them) until `sampleid compact`, or `delete --compact`, reclaims them.
    #[command(verbatim_doc_comment)]
    Delete(DeleteArgs),

    /// Reclaim the rows of deleted songs: the live songs' rows are copied
    /// into new files and the search graphs rebuilt over them, then one
    /// commit switches to them. Safe to kill at any moment (the library is
    /// then as it was before or after); queries by other processes go on.
    ///
    /// With --json: {"songs", "generation", "segments_removed",
    /// "chroma_frames_removed", "peaks_removed", "quads_removed",
    /// "bytes_before", "bytes_after", "seconds"}, or {"compacted": false}
    /// when no deleted song holds rows.
    #[command(verbatim_doc_comment)]
    Compact(DbArgs),

    /// List the songs of a library.
    List(DbArgs),

    /// Sizes of a library: songs, hours, segments, bytes per hour.
    Stats(DbArgs),

    /// Benchmarks (speed and memory, on your own files).
    #[command(subcommand)]
    Bench(BenchCommand),

    #[cfg(feature = "lab")]
    /// The training/benchmark corpus built from freely licensed Debian packages.
    #[command(subcommand)]
    Corpus(CorpusCommand),

    #[cfg(feature = "lab")]
    /// Train models on the corpus (or your own catalogue built the same way).
    #[command(subcommand)]
    Train(TrainCommand),
}

/// ANN structures for a new library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnnArg {
    /// HNSW graph (usearch): fast, holds every vector in memory.
    Hnsw,
    /// Compare every segment: exact, slow for large libraries.
    Exact,
    /// Inverted file + product quantiser (16 bytes per segment): for libraries
    /// too large for HNSW in memory. Exact search until 20,000 segments.
    IvfPq,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Library directory (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Audio files or directories (directories are searched recursively for audio files).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// ANN structure of a new library (default from the config: hnsw).
    #[arg(long, value_enum)]
    pub ann: Option<AnnArg>,
    /// Files processed at once (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// One JSON object per file and a summary object, instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Library directory.
    #[arg(long)]
    pub db: PathBuf,
    /// Audio clips to identify.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
    /// Skip the re-ranker (first stage only: offset-consistent ANN hits).
    #[arg(long)]
    pub no_rerank: bool,
    /// ANN candidates per query segment (default 5).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Stages that answer: `landmarks` (spectral-peak landmarks with
    /// verification), `neural`, or `all` (every stage's evidence fused into
    /// one calibrated confidence; the network runs only when the landmarks
    /// are not decisive).
    #[arg(long, value_enum, default_value_t = StageArg::All)]
    pub stage: StageArg,
    /// Report songs from this calibrated confidence up (0–1; default
    /// `[query] min_confidence`, 0.5). 0 lists every candidate.
    #[arg(long, value_parser = confidence_arg)]
    pub min_confidence: Option<f64>,
}

/// A confidence in [0, 1].
pub fn confidence_arg(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("a confidence lies in [0, 1] (got {v})"))
    }
}

/// `--stage` of query-like commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    Landmarks,
    Neural,
    All,
}

impl From<StageArg> for sampleid_engine::Stage {
    fn from(s: StageArg) -> Self {
        match s {
            StageArg::Landmarks => Self::Landmarks,
            StageArg::Neural => Self::Neural,
            StageArg::All => Self::All,
        }
    }
}

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Library directory.
    #[arg(long)]
    pub db: PathBuf,
    /// Audio clips to look for.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum GenreCommand {
    #[cfg(feature = "lab")]
    /// Train a classifier on labelled tracks and save it next to a library
    /// (--db DIR: DIR/genre.safetensors) or in --classifier FILE.
    Train(GenreTrainArgs),
    /// Classify tracks: each joins the training graph through its nearest
    /// training tracks (no retraining). --json gives the probabilities and neighbours.
    Predict(GenrePredictArgs),
    #[cfg(feature = "lab")]
    /// k-fold cross-validation of GraphSAGE against a k-NN vote and an MLP
    /// (same features, same folds): report.md, summary.json, confusion PNGs.
    Eval(GenreEvalArgs),
    #[cfg(feature = "lab")]
    /// Make a labelled set: mma grooves rendered by style family (--source
    /// grooves), or the corpus's music by its style (--source corpus).
    Dataset(GenreDatasetArgs),
}

#[derive(Debug, Args)]
pub struct GenreTrainArgs {
    /// CSV with the columns path,label[,group] (paths relative to the file).
    #[arg(long)]
    pub labels: PathBuf,
    /// Save the classifier next to this library.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Save the classifier here instead (FILE.safetensors + FILE.json).
    #[arg(long, value_name = "FILE")]
    pub classifier: Option<PathBuf>,
    /// Add the mean of the track's neural fingerprints to its features.
    #[arg(long)]
    pub fingerprints: bool,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenrePredictArgs {
    /// Audio files to classify.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Use the classifier saved next to this library.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Use this classifier file instead.
    #[arg(long, value_name = "FILE")]
    pub classifier: Option<PathBuf>,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenreEvalArgs {
    /// CSV with the columns path,label[,group]; a group (a groove, a package)
    /// stays in one fold.
    #[arg(long)]
    pub labels: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub folds: usize,
    /// Report directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Add the mean of the track's neural fingerprints to its features.
    #[arg(long)]
    pub fingerprints: bool,
    /// Build the graph over all tracks' features (test tracks link to each
    /// other too), instead of letting test tracks join the training graph.
    #[arg(long)]
    pub transductive: bool,
    /// Ignore the group column: every track is its own group, so near-copies
    /// (renditions of one groove) can sit in training and test (the usual,
    /// optimistic protocol; for comparison).
    #[arg(long)]
    pub ignore_groups: bool,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
}

/// Where a labelled set comes from.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenreSource {
    /// mma grooves in 8 style families, rendered with varied tempo, key,
    /// SoundFont and instruments.
    Grooves,
    /// The corpus's music, labelled by its package's style.
    Corpus,
}

#[derive(Debug, Args)]
pub struct GenreDatasetArgs {
    #[arg(long, value_enum, default_value = "grooves")]
    pub source: GenreSource,
    #[arg(long, default_value = "corpus")]
    pub corpus: PathBuf,
    /// Output directory (labels.csv, clips/).
    #[arg(long)]
    pub out: PathBuf,
    /// Renditions per groove.
    #[arg(long, default_value_t = 4)]
    pub variants: usize,
    /// Bars per rendition.
    #[arg(long, default_value_t = 12)]
    pub bars: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Library directory (created when writable and missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Address to listen on, IP:PORT (default: [serve] addr, 127.0.0.1:8080;
    /// port 0 picks a free one, printed at start).
    #[arg(long)]
    pub addr: Option<String>,
    /// Serve queries only; the library can then be written by `sampleid index`
    /// and `sampleid delete` at the same time (the server reopens it when it
    /// changes, every [serve] reload_every_s).
    #[arg(long)]
    pub read_only: bool,
    /// Requests decoded and searched at once (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Largest request body in MB (default 50).
    #[arg(long, value_name = "MB")]
    pub max_body_mb: Option<f64>,
}

#[derive(Debug, Args)]
pub struct AlignArgs {
    /// First recording (rows of the cost matrix).
    pub a: PathBuf,
    /// Second recording (columns).
    pub b: PathBuf,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
    /// Draw the cost matrix and the warping path as PNG.
    #[arg(long, value_name = "OUT.png")]
    pub plot: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Library directory.
    #[arg(long)]
    pub db: PathBuf,
    /// Paths as indexed (see `list`), or numeric song ids.
    #[arg(required = true)]
    pub songs: Vec<String>,
    /// Then reclaim their rows (as `sampleid compact`).
    #[arg(long)]
    pub compact: bool,
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Library directory.
    #[arg(long)]
    pub db: PathBuf,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Contrastive training of the graph encoder (resumable: run it again on the same --run).
    Encoder(TrainEncoderArgs),
    /// Train the cross-attention re-ranker on node matrices of the encoder in use.
    Reranker(TrainRerankerArgs),
    /// Fit the calibrator of the fused confidence on sampleid's answers to
    /// validation benchmarks (`bench run --min-confidence 0` with
    /// `[query] early_stop` above 1, so that every stage's evidence is listed).
    Calibrator(TrainCalibratorArgs),
    /// Fit the PCA of the chroma shingles that libraries store (on the
    /// corpus's training split), and write its card.
    Shingles(TrainShinglesArgs),
}

#[derive(Debug, Args)]
pub struct TrainShinglesArgs {
    /// Corpus directory (with manifest.csv).
    #[arg(long, default_value = "corpus")]
    pub corpus: PathBuf,
    /// Where the model goes; its card (`.md`) is written beside it.
    #[arg(long, default_value = "models/shingles.json")]
    pub out: PathBuf,
    /// CENS features (seconds) per shingle.
    #[arg(long, default_value_t = 10)]
    pub length: usize,
    /// PCA dimensions.
    #[arg(long, default_value_t = 60)]
    pub dims: usize,
    /// At most this many music files of the training split (evenly spread).
    #[arg(long, default_value_t = 400)]
    pub files: usize,
}

#[derive(Debug, Args)]
pub struct TrainCalibratorArgs {
    /// A benchmark and sampleid's answers to it, as BENCH_DIR=ANSWERS.jsonl
    /// (repeat for several; validation split only).
    #[arg(long = "on", value_name = "BENCH=ANSWERS", required = true)]
    pub on: Vec<String>,
    /// Where the calibrator goes; its card (`.md`) and reliability diagram
    /// (`-reliability.png`) are written beside it.
    #[arg(long, default_value = "models/calibrator.json")]
    pub out: PathBuf,
    /// L2 penalty on the standardised weights.
    #[arg(long, default_value_t = 1.0)]
    pub l2: f64,
    /// Weight of unknown clips' candidates: the confidence is calibrated for
    /// a stream with this many times the benchmarks' share of unknown clips.
    /// 1, as the shipped calibrator was fitted: with the library's size as a
    /// feature and both sizes in the data, 2 accepted 5 fewer unknown clips
    /// over the four validation runs but found 5 fewer known ones (835 / 8
    /// known found / unknown accepted against 840 / 13; docs/identification.md).
    #[arg(long, default_value_t = 1.0)]
    pub unknown_weight: f64,
    /// Fits without this feature (its weight is 0): to measure what a
    /// feature adds. Repeat for several.
    #[arg(long = "drop", value_name = "FEATURE")]
    pub drop: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TrainRerankerArgs {
    /// Corpus directory (with manifest.csv).
    #[arg(long, default_value = "corpus")]
    pub corpus: PathBuf,
    /// Run directory: encoded pairs, metrics, best model.
    #[arg(long)]
    pub run: PathBuf,
    /// Training settings (TOML, the fields of `RerankerTraining`); flags below override it.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Training pairs (default 8192).
    #[arg(long)]
    pub train_pairs: Option<usize>,
    /// Held-out pairs (default 1024).
    #[arg(long)]
    pub valid_pairs: Option<usize>,
    /// Passes over the pairs (default 8).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Channels stored per reference node in the index (default 16).
    #[arg(long)]
    pub store_dim: Option<usize>,
    /// Learning rate of Adam (default 3e-4).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of pairs and initialisation (default 7).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// CPU threads for pair making and the network (default: all cores). Fewer
    /// leave the machine usable; the result does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Encoder size presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncoderSize {
    /// Channels 32/64/96/128, blocks 1/1/2/1 (~0.8 M parameters): trains on a CPU.
    Small,
    /// The published size: channels 64/128/256/512, blocks 2/2/6/2 (~17 M).
    Full,
}

#[derive(Debug, Args)]
pub struct TrainEncoderArgs {
    /// Corpus directory (with manifest.csv).
    #[arg(long, default_value = "corpus")]
    pub corpus: PathBuf,
    /// Run directory: checkpoints, metrics, curve, best model.
    #[arg(long)]
    pub run: PathBuf,
    /// Training settings (TOML, the fields of `EncoderTraining`); flags below override it.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub size: Option<EncoderSize>,
    /// Train without the graph blocks (the network the published code ran).
    #[arg(long)]
    pub no_graph: bool,
    /// Optimizer steps (default 3000).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Pairs per step (default 64).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate of Adam (default 8e-5, the published one).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Keys of earlier batches kept as extra negatives (momentum encoder; 0: in-batch only).
    #[arg(long)]
    pub memory: Option<usize>,
    /// Steps between validations (default 250).
    #[arg(long)]
    pub validate_every: Option<usize>,
    /// Seed of pairs, initialisation and validation set (default 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// CPU threads for pair making and the network (default: all cores). Fewer
    /// leave the machine usable; the result does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    /// NVIDIA GPU (needs a binary built with `--features cuda`).
    Cuda,
}

#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Download (apt-get download, no installation), extract and render the
    /// corpus, and write DIR/manifest.csv with a fixed 70/10/20 % split.
    /// Idempotent and resumable: run it again to complete or update.
    Fetch(CorpusFetchArgs),
    /// Hours per kind and split of an existing corpus.
    Stats(CorpusStatsArgs),
}

#[derive(Debug, Args)]
pub struct CorpusFetchArgs {
    /// Corpus directory (never commit it).
    #[arg(long, default_value = "corpus")]
    pub dir: PathBuf,
    /// Only these packages (repeatable).
    #[arg(long, value_name = "PACKAGE")]
    pub only: Vec<String>,
    /// Leave out packages with large downloads per hour of music.
    #[arg(long)]
    pub skip_heavy: bool,
    /// How many mma groove styles to render as synthetic stem sets (118 exist).
    #[arg(long, default_value_t = 118)]
    pub grooves: usize,
    /// Do not render tracker modules.
    #[arg(long)]
    pub no_modules: bool,
    /// A package table to use instead of the shipped one (TOML).
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CorpusStatsArgs {
    /// Corpus directory.
    #[arg(long, default_value = "corpus")]
    pub dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which features `sampleid features` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FeatureKind {
    /// Log-mel spectrogram (frames × 64, dB).
    Mel,
    /// Normalised encoder segments (n × 64 × 128).
    Segments,
    /// Chroma (frames × 12).
    Chroma,
    /// CENS (frames × 12).
    Cens,
    /// One whole-track descriptor (1 × 113): means and variances of MFCC,
    /// delta-MFCC, chroma, spectral centroid / roll-off / flatness and
    /// zero-crossing rate, then the tempo (BPM), for genre classification.
    Track,
}

impl FeatureKind {
    /// Short name used in output file names.
    pub fn name(self) -> &'static str {
        match self {
            FeatureKind::Mel => "mel",
            FeatureKind::Segments => "segments",
            FeatureKind::Track => "track",
            FeatureKind::Chroma => "chroma",
            FeatureKind::Cens => "cens",
        }
    }
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Audio files (mp3, ogg, opus, flac, wav, aiff, m4a).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output file (only with a single input).
    #[arg(long, short, value_name = "OUT.npy", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,

    /// Output directory: each input gets `<name>.<kind>.npy` there
    /// (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// What to compute.
    #[arg(long, short, value_enum, default_value_t = FeatureKind::Mel)]
    pub kind: FeatureKind,

    /// One JSON object per input on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Audio files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// One JSON object per input on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Decode + resample + log-mel + segmentation throughput (× realtime) and peak memory.
    Frontend(BenchFrontendArgs),
    /// Encoder inference speed: segments per second and × realtime.
    Encoder(BenchEncoderArgs),
    /// Spectral peaks and landmarks (pairs, quads) on your files: how many
    /// per second of audio, and how fast (× realtime, one thread), for the
    /// reference and the query settings.
    Peaks(BenchPeaksArgs),
    /// The landmark stage at scale, without the neural indexing: the peaks
    /// and quads of FILE... (and, to reach --hours, copies of them scaled in
    /// time and frequency, which are other peak sets of the same density)
    /// in one in-memory landmark index; then the search time of each query
    /// clip (median of runs), the index's sizes and the peak memory.
    Landmarks(BenchLandmarksArgs),
    #[cfg(feature = "lab")]
    /// Build a benchmark from the corpus's test split: references (to index),
    /// negatives (never indexed) and query clips with exact ground truth.
    Make(BenchMakeArgs),
    #[cfg(feature = "lab")]
    /// Score answers in the `sampleid query --json` format against a benchmark:
    /// a markdown table, a JSON summary and a chart per protocol.
    Run(BenchRunArgs),
    #[cfg(feature = "lab")]
    /// Audio matching on a benchmark: chroma-DTW matching against shingle
    /// search (exact and HNSW, by PCA dimension), P@1 / MAP and time per query.
    Matching(BenchMatchingArgs),
    /// Load test of a running `sampleid serve`: CLIENTS concurrent clients
    /// post query clips to /v1/query for DURATION seconds (with --uploads,
    /// also upload, check and delete songs); reports throughput, latency
    /// percentiles, errors and the server's memory (scripts/bench-serve).
    Serve(BenchServeArgs),
    #[cfg(feature = "lab")]
    /// Build a version-identification benchmark: mma pieces rendered several
    /// times with another groove, instruments, tempo and key (refs/ holds one
    /// rendition per piece, queries/ 20 s excerpts of the others).
    Versions(BenchVersionsArgs),
}

#[derive(Debug, Args)]
pub struct BenchVersionsArgs {
    /// Corpus directory (mma and the SoundFont under tools/, from `sampleid corpus fetch`).
    #[arg(long, default_value = "corpus")]
    pub corpus: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "bench-data/versions")]
    pub out: PathBuf,
    /// Pieces (each gives one reference).
    #[arg(long, default_value_t = 40)]
    pub pieces: usize,
    /// Other renditions per piece (each gives one query).
    #[arg(long, default_value_t = 3)]
    pub versions: usize,
    /// Query length in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub excerpt: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// Query clips: files or directories (searched recursively for audio).
    #[arg(required = true)]
    pub queries: Vec<PathBuf>,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Seconds to send new requests (those in flight at the end are awaited).
    #[arg(long, default_value_t = 60.0)]
    pub duration_s: f64,
    /// Give up on a request after this many seconds (counted as an error).
    #[arg(long, default_value_t = 300.0)]
    pub timeout_s: f64,
    /// Write every request (client, clip, status, ms) as JSON lines here.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Mixed load: songs (files or directories) that clients upload to
    /// `POST /v1/songs`, query by a 10 s excerpt right after each 201, and
    /// delete again (`--mix`). Needs a writable server and its token
    /// (`SAMPLEID_TOKEN`). The songs must not be in the library already.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub uploads: Vec<PathBuf>,
    /// Shares of queries, uploads and deletes in mixed load (QUERIES:UPLOADS:DELETES).
    #[arg(long, default_value = "8:1:1", value_name = "Q:U:D")]
    pub mix: String,
    /// JSON instead of text: one object per line (see the command's help).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchMatchingArgs {
    /// Benchmark directory (from `sampleid bench make`).
    #[arg(long)]
    pub bench: PathBuf,
    /// Library holding the benchmark's refs/ with chroma (e.g. made by `bench run`).
    #[arg(long)]
    pub db: PathBuf,
    /// CENS features per shingle; queries shorter than this many seconds are left out.
    #[arg(long, default_value_t = 10)]
    pub shingle_length: usize,
    /// PCA dimensions to compare (0: no reduction).
    #[arg(long, value_delimiter = ',', default_value = "0,60,30,12")]
    pub dims: Vec<usize>,
    /// Also score these answer files (`sampleid query --json` lines, such as a
    /// `bench run`'s answers.jsonl) on the same queries, for comparison.
    #[arg(long, value_name = "FILE.jsonl")]
    pub results: Vec<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which protocols a benchmark holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// GraFPrint audio identification (noise, reverb; 1–5 s queries).
    AudioId,
    /// NeuralSampleID sample identification (pitch, tempo, speed, mixing; 5–20 s).
    SampleId,
    /// Both.
    Both,
}

/// Which cells a benchmark holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SuiteArg {
    /// The published protocols' cells (GraFPrint noise/reverb, NeuralSampleID mixes).
    Paper,
    /// The cells users meet: clean, telephone, MP3 32 kbit/s, noise and reverb
    /// (10 s and 5 s), and fixed pitch/tempo/speed changes without background (10 s).
    Users,
    /// Both.
    All,
}

/// The corpus split a benchmark is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// For reporting results.
    Test,
    /// For choosing thresholds (never choose them on test).
    Validation,
}

/// How many tracks are kept as negatives: a number, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativesArg(pub Option<usize>);

impl std::str::FromStr for NegativesArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(Self(None));
        }
        s.parse()
            .map(|n| Self(Some(n)))
            .map_err(|_| format!("`{s}` is neither a number of tracks nor `all`"))
    }
}

#[derive(Debug, Args)]
pub struct BenchMakeArgs {
    /// Corpus directory (built by `sampleid corpus fetch`).
    #[arg(long, default_value = "corpus")]
    pub corpus: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "bench-data/default")]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = ProtocolArg::Both)]
    pub protocol: ProtocolArg,
    /// Which cells: the published protocols', the ones users meet, or both.
    #[arg(long, value_enum, default_value_t = SuiteArg::All)]
    pub suite: SuiteArg,
    /// Corpus split the tracks come from: test, or validation to choose
    /// thresholds on.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Library size (tracks of the split that get indexed).
    #[arg(long, default_value_t = 100)]
    pub references: usize,
    /// Tracks that are never indexed; queries made from them measure false
    /// accepts. `all`: every track of the split that is neither a reference
    /// nor one of the 4 backgrounds.
    #[arg(long, default_value = "25", value_name = "N|all")]
    pub negatives: NegativesArg,
    /// Positive queries per condition and query length.
    #[arg(long, default_value_t = 4)]
    pub per_cell: usize,
    /// Negative queries per condition and query length (the users' audio-ID
    /// cells take one from every negative track instead).
    #[arg(long, default_value_t = 1)]
    pub negatives_per_cell: usize,
    /// Seed: the same seed and corpus give the same benchmark.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BenchRunArgs {
    /// Benchmark directory (from `sampleid bench make`).
    #[arg(long)]
    pub bench: PathBuf,
    /// Answers to score: JSON lines as `sampleid query --json` prints them,
    /// from sampleid or any other system run on the benchmark's refs/ and
    /// queries/. Without it, sampleid itself answers: it indexes refs/ into
    /// --db (skipping what is already there), runs `query` on every query
    /// clip, and writes its answers to the report directory.
    #[arg(long, value_name = "FILE.jsonl")]
    pub results: Option<PathBuf>,
    /// Library for sampleid's own answers (default: BENCH/db-ENCODER-ANN).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// ANN structure of that library.
    #[arg(long, value_enum, default_value_t = AnnArg::Hnsw)]
    pub ann: AnnArg,
    /// Answer without the re-ranker (first stage only).
    #[arg(long)]
    pub no_rerank: bool,
    /// Stages that answer (as `sampleid query --stage`).
    #[arg(long, value_enum, default_value_t = StageArg::All)]
    pub stage: StageArg,
    /// sampleid's answers: report songs from this confidence up (as `sampleid
    /// query --min-confidence`; 0 keeps every candidate, for calibration).
    #[arg(long, value_parser = confidence_arg)]
    pub min_confidence: Option<f64>,
    /// Score only the answers whose score is at least this (any system's:
    /// e.g. a run at --min-confidence 0 scored at 0.5).
    #[arg(long)]
    pub min_score: Option<f64>,
    /// Name of the system in the report (default: the results file's name).
    #[arg(long)]
    pub system: Option<String>,
    /// Report directory (default: BENCH/report-SYSTEM).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchFrontendArgs {
    /// Real audio files to process (each run processes all of them).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Thread counts to measure; files are spread over the threads.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,

    /// Runs per thread count; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,

    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// Audio files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output file (one input only).
    #[arg(long, short, value_name = "FILE", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,

    /// Output directory for `<stem>.fingerprints.npy` (default: current directory).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// One JSON line per input on stdout (what was written, segment times).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Print the model card as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchPeaksArgs {
    /// Audio files (decoded first, timed apart from the landmark extraction).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Runs per setting; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,

    /// Survival instead of speed: cut 10 s excerpts (one every 30 s), apply
    /// this transformation (`pitch:+1` semitones, `tempo:0.85` rate,
    /// `speed:1.04` factor) and report the share of each excerpt's reference
    /// pairs and quads found again in the transformed excerpt, at the place
    /// the transformation moved them to.
    #[arg(long, value_name = "KIND:VALUE")]
    pub survival: Option<String>,

    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchLandmarksArgs {
    /// Reference audio files (decoded and their landmarks extracted first).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Query clips to search (their landmarks are extracted before timing).
    #[arg(long, required = true, num_args = 1..)]
    pub queries: Vec<PathBuf>,
    /// Hours of reference landmarks to reach with scaled copies.
    #[arg(long, default_value_t = 100.0)]
    pub hours: f64,

    /// Hours (of the --hours) added after the rest was merged into the quad
    /// grid's array, as songs uploaded to a running server are: they wait
    /// in the index's pending map, which queries probe as well.
    #[arg(long, default_value_t = 0.0)]
    pub pending_hours: f64,
    /// Timed runs over the queries; the median per query is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Keep the references' extracted peaks in this file (written when
    /// missing, read when present) so that a second run skips decoding.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchEncoderArgs {
    /// Audio file whose segments are encoded (default: a synthetic chord sweep).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Segments per run.
    #[arg(long, default_value_t = 256)]
    pub segments: usize,

    /// Thread counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,

    /// Runs per thread count; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,

    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}
