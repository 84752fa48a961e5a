//! The `sampleid` binary: adapters over `sampleid-engine`. The CLI
//! (`cli`, `cmd/*`) turns arguments into engine calls and prints the
//! answers; the server (`serve/*`) turns HTTP requests into the same calls.
//! The lab (corpus, training, benchmark building) is behind the default
//! feature `lab`; `--no-default-features` builds the runtime binary alone.

mod cli;
mod cmd;
mod config;
mod progress;
mod serve;
mod stats;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{BenchCommand, Cli, Command, GenreCommand};
#[cfg(feature = "lab")]
use crate::cli::{CorpusCommand, TrainCommand};
use crate::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    // Decoders run under catch_unwind; a panic there becomes a "corrupt file"
    // error. Keep its report to one line instead of a backtrace dump.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("internal error: {info}");
    }));
    match run(&cli) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("{failed} input(s) failed");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command; `Ok(n)` is the number of inputs that failed.
fn run(cli: &Cli) -> anyhow::Result<usize> {
    let cfg = Config::load(cli.config.as_deref())?;
    match &cli.command {
        Command::Features(args) => cmd::features::run(args, &cfg, cli.quiet),
        Command::Info(args) => cmd::info::run(args, &cfg, cli.quiet),
        Command::Config => {
            print!("{}", cfg.to_toml()?);
            Ok(0)
        }
        Command::Fingerprint(args) => cmd::fingerprint::run(args, &cfg, cli.model.as_deref(), cli.quiet),
        Command::Model(args) => cmd::fingerprint::model(args, cli.model.as_deref()).map(|()| 0),
        Command::Index(args) => cmd::library::index(args, &cfg, cli.model.as_deref(), cli.quiet),
        Command::Query(args) => cmd::query::run(args, &cfg, cli.model.as_deref()),
        Command::Match(args) => cmd::matching::run_match(args, &cfg, cli.model.as_deref()),
        Command::Genre(GenreCommand::Predict(args)) => cmd::genre::predict(args, &cfg, cli.model.as_deref()),
        #[cfg(feature = "lab")]
        Command::Genre(GenreCommand::Train(args)) => {
            cmd::genre::lab::train(args, &cfg, cli.model.as_deref(), cli.quiet).map(|()| 0)
        }
        #[cfg(feature = "lab")]
        Command::Genre(GenreCommand::Eval(args)) => {
            cmd::genre::lab::evaluate(args, &cfg, cli.model.as_deref(), cli.quiet).map(|()| 0)
        }
        #[cfg(feature = "lab")]
        Command::Genre(GenreCommand::Dataset(args)) => cmd::genre::lab::dataset(args, cli.quiet).map(|()| 0),
        Command::Serve(args) => serve::run(args, &cfg, cli.model.as_deref()).map(|()| 0),
        Command::Align(args) => cmd::matching::run_align(args, &cfg, cli.model.as_deref()).map(|()| 0),
        Command::Delete(args) => cmd::library::delete(args, &cfg, cli.model.as_deref()),
        Command::Compact(args) => cmd::library::compact(args, &cfg, cli.model.as_deref()).map(|()| 0),
        Command::List(args) => cmd::library::list(args).map(|()| 0),
        Command::Stats(args) => cmd::library::stats(args).map(|()| 0),
        Command::Bench(BenchCommand::Frontend(args)) => cmd::speed::frontend(args, &cfg).map(|()| 0),
        Command::Bench(BenchCommand::Encoder(args)) => {
            cmd::speed::encoder(args, &cfg, cli.model.as_deref()).map(|()| 0)
        }
        Command::Bench(BenchCommand::Peaks(args)) => cmd::speed::peaks(args, &cfg).map(|()| 0),
        Command::Bench(BenchCommand::Landmarks(args)) => cmd::speed::landmarks(args, &cfg).map(|()| 0),
        Command::Bench(BenchCommand::Serve(args)) => cmd::load::run(args, cli.quiet).map(|()| 0),
        #[cfg(feature = "lab")]
        Command::Bench(BenchCommand::Versions(args)) => cmd::bench::versions(args, cli.quiet).map(|()| 0),
        #[cfg(feature = "lab")]
        Command::Bench(BenchCommand::Matching(args)) => {
            cmd::bench::matching(args, &cfg, cli.model.as_deref()).map(|()| 0)
        }
        #[cfg(feature = "lab")]
        Command::Bench(BenchCommand::Make(args)) => cmd::bench::make(args, cli.quiet).map(|()| 0),
        #[cfg(feature = "lab")]
        Command::Bench(BenchCommand::Run(args)) => {
            cmd::bench::run(args, &cfg, cli.model.as_deref(), cli.quiet).map(|()| 0)
        }
        #[cfg(feature = "lab")]
        Command::Corpus(CorpusCommand::Fetch(args)) => cmd::corpus::fetch(args, cli.quiet).map(|()| 0),
        #[cfg(feature = "lab")]
        Command::Corpus(CorpusCommand::Stats(args)) => cmd::corpus::stats(args).map(|()| 0),
        #[cfg(feature = "lab")]
        Command::Train(TrainCommand::Encoder(args)) => cmd::train::encoder(args, cli.quiet).map(|()| 0),
        #[cfg(feature = "lab")]
        Command::Train(TrainCommand::Reranker(args)) => {
            cmd::train::reranker(args, cli.model.as_deref(), cli.quiet).map(|()| 0)
        }
        #[cfg(feature = "lab")]
        Command::Train(TrainCommand::Calibrator(args)) => {
            cmd::train::calibrator(args, cli.model.as_deref()).map(|()| 0)
        }
        #[cfg(feature = "lab")]
        Command::Train(TrainCommand::Shingles(args)) => {
            cmd::train::shingles(args, &cfg, cli.model.as_deref(), cli.quiet).map(|()| 0)
        }
    }
}

const SYMPHONIA_CRATES: &[&str] = &[
    "symphonia",
    "symphonia_core",
    "symphonia_metadata",
    "symphonia_format_ogg",
    "symphonia_format_riff",
    "symphonia_format_isomp4",
    "symphonia_bundle_mp3",
    "symphonia_bundle_flac",
    "symphonia_codec_vorbis",
    "symphonia_codec_aac",
    "symphonia_codec_alac",
    "symphonia_codec_pcm",
];

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // symphonia logs its own view of damaged input (e.g. "probe reached EOF")
    // at error level; our typed errors already say it with the file name, so
    // its records are shown only with -v.
    let mut directives = default.to_string();
    if verbose == 0 {
        for krate in SYMPHONIA_CRATES {
            directives.push_str(&format!(",{krate}=off"));
        }
    }
    let filter = EnvFilter::try_from_env("SAMPLEID_LOG").unwrap_or_else(|_| EnvFilter::new(directives));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
