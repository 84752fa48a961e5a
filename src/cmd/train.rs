//! `sampleid train`: model training.

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sampleid_encoder::EncoderConfig;
use sampleid_train::{EncoderTraining, RerankerTraining, step_profile, train_encoder, train_reranker};

use crate::cli::{DeviceArg, EncoderSize, TrainEncoderArgs, TrainRerankerArgs};

fn device(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::flex().autodiff()),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => Ok(Device::cuda(0).autodiff()),
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => bail!("this sampleid was built without CUDA; rebuild with `--features cuda`"),
    }
}

/// Limits the threads of everything that runs on rayon's global pool (pair
/// making and the CPU backend); must run before either starts.
fn limit_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting the number of threads")?;
    }
    Ok(())
}

pub fn encoder(args: &TrainEncoderArgs, quiet: bool) -> Result<()> {
    limit_threads(args.threads)?;
    let mut cfg = match &args.settings {
        Some(p) => toml::from_str::<EncoderTraining>(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("invalid training settings {}", p.display()))?,
        None => EncoderTraining::default(),
    };
    match args.size {
        Some(EncoderSize::Small) => cfg.encoder = EncoderConfig::small(),
        Some(EncoderSize::Full) => cfg.encoder = EncoderConfig::full(),
        None => {}
    }
    if args.no_graph {
        cfg.encoder.graph = false;
    }
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = args.$field { cfg.$field = v; })* };
    }
    set!(steps, batch_size, lr, memory, validate_every, seed);
    let device = device(args.device)?;
    let bar = ProgressBar::with_draw_target(Some(cfg.steps as u64), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps, eta {eta} {wide_msg}")
            .expect("static template"),
    );
    let summary = train_encoder(&args.corpus, &args.run, &cfg, &device, &|r, v| {
        bar.set_position(r.step as u64);
        let mut msg = format!("loss {:.3} lr {:.1e} {:.0} pairs/s", r.loss, r.lr, r.pairs_per_s);
        if let Some(v) = v {
            msg.push_str(&format!(" | validation top-1 {:.1} %", v.hit_rate));
            bar.println(format!(
                "step {}: validation top-1 {:.1} % {:?}",
                v.step, v.hit_rate, v.by_kind
            ));
        }
        bar.set_message(msg);
        true
    })
    .with_context(|| format!("training in {}", args.run.display()))?;
    bar.finish_and_clear();
    println!(
        "{} steps in {:.0} s, final loss {:.3}; best validation top-1 {} → {}",
        summary.steps,
        summary.seconds,
        summary.final_loss,
        summary
            .best
            .as_ref()
            .map(|b| format!("{:.1} % at step {}", b.hit_rate, b.step))
            .unwrap_or_else(|| "n/a".into()),
        summary.best_model.display()
    );
    let profile = step_profile(&args.run).with_context(|| format!("reading {}", args.run.display()))?;
    if profile.steps > 0 {
        let share = |s: f64| 100.0 * s / profile.step_s.max(1e-12);
        let parts: Vec<String> = profile
            .wall_s
            .iter()
            .map(|(k, v)| format!("{k} {v:.3} s ({:.0} %)", share(*v)))
            .collect();
        let cpu: Vec<String> = profile.pair_cpu_s.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        println!(
            "time per step (median of {} steps): {:.3} s = {}; pair making, CPU s: {}{}",
            profile.steps,
            profile.step_s,
            parts.join(", "),
            cpu.join(", "),
            profile
                .validation_s
                .map(|v| format!("; one validation {v:.1} s"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `sampleid train reranker`: the classifier for the encoder in use.
pub fn reranker(args: &TrainRerankerArgs, model_path: Option<&std::path::Path>, quiet: bool) -> Result<()> {
    limit_threads(args.threads)?;
    let mut cfg = match &args.settings {
        Some(p) => toml::from_str::<RerankerTraining>(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("invalid training settings {}", p.display()))?,
        None => RerankerTraining::default(),
    };
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = args.$field { cfg.$field = v; })* };
    }
    set!(train_pairs, valid_pairs, epochs, lr, seed);
    if let Some(d) = args.store_dim {
        cfg.reranker.store_dim = d;
    }
    let encoder = sampleid_engine::models::load_encoder(&sampleid_engine::ModelSource::from_option(model_path))?;
    let device = device(args.device)?;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}, eta {eta}")
            .expect("static template"),
    );
    let summary = train_reranker(
        &args.corpus,
        &args.run,
        &cfg,
        &encoder,
        &device,
        &|stage, done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(match stage {
                "epoch" => "steps".to_string(),
                s => format!("{s} pairs encoded"),
            });
        },
    )
    .with_context(|| format!("training in {}", args.run.display()))?;
    bar.finish_and_clear();
    let b = &summary.best;
    println!(
        "{} epochs in {:.0} s; best epoch {}: AUROC {:.3}, true accept {:.1} %, false accept {:.1} % (hard) / {:.1} % (random) at 0.5 → {}",
        summary.epochs,
        summary.seconds,
        b.epoch,
        b.auroc,
        100.0 * b.true_accept,
        100.0 * b.false_accept_hard,
        100.0 * b.false_accept_random,
        summary.best_model.display()
    );
    Ok(())
}

/// `sampleid train calibrator`: the three logistic models of the fused
/// confidence, fitted on labelled candidates of validation benchmarks.
pub fn calibrator(args: &crate::cli::TrainCalibratorArgs, model_path: Option<&std::path::Path>) -> Result<()> {
    use sampleid_engine::fusion::{Calibrator, Context, Logistic, Model, feature_names, features, reliability};

    anyhow::ensure!(
        args.unknown_weight.is_finite() && args.unknown_weight > 0.0,
        "--unknown-weight must be positive"
    );
    let mut candidates = Vec::new();
    let mut sources = Vec::new();
    for pair in &args.on {
        let (bench_dir, answers) = pair
            .split_once('=')
            .with_context(|| format!("--on {pair:?}: expected BENCH_DIR=ANSWERS.jsonl"))?;
        let bench = sampleid_bench::Benchmark::load(std::path::Path::new(bench_dir))?;
        let c = crate::cmd::bench::labelled_candidates(&bench, std::path::Path::new(answers))?;
        anyhow::ensure!(
            !c.is_empty(),
            "{answers} lists no candidate of {bench_dir}'s queries: run `bench run --min-confidence 0`"
        );
        anyhow::ensure!(
            c.iter()
                .any(|c| c.evidence.landmarks.is_some() || c.evidence.neural.is_some()),
            "{answers} has no stage evidence: the calibrator learns from sampleid's own answers \
             (`sampleid bench run --min-confidence 0`), not from another system's"
        );
        anyhow::ensure!(
            c.iter().all(|c| c.library_hours.is_some()),
            "{answers} does not say how large the library was (`library_hours`): \
             it was written by an older sampleid; run `bench run --min-confidence 0` again"
        );
        sources.push(format!(
            "{bench_dir} ({} queries, {} negatives): {answers}",
            bench.queries.len(),
            bench.queries.iter().filter(|q| q.negative).count()
        ));
        candidates.extend(c);
    }
    for d in &args.drop {
        anyhow::ensure!(
            [Model::Landmarks, Model::Neural, Model::Fused]
                .iter()
                .any(|m| feature_names(*m).contains(&d.as_str())),
            "--drop {d}: no such feature (the features are listed in models/calibrator.md)"
        );
    }
    let ctx = |c: &crate::cmd::bench::Candidate| Context {
        duration_s: c.duration_s,
        library_hours: c.library_hours.unwrap_or_default(),
    };
    let hours = candidates.iter().map(|c| ctx(c).library_hours);
    let library_hours = [hours.clone().fold(f64::INFINITY, f64::min), hours.fold(0.0, f64::max)];
    let encoder = sampleid_engine::models::load_encoder(&sampleid_engine::ModelSource::from_option(model_path))?;
    let fit = |model: Model| -> Result<(Logistic, usize, usize)> {
        let rows: Vec<_> = candidates
            .iter()
            .filter(|c| match model {
                // The landmark stage alone never sees guided evidence (it
                // needs the neural stage's hypothesis).
                Model::Landmarks => c.evidence.landmarks.as_ref().is_some_and(|l| l.method != "guided"),
                Model::Neural => c.evidence.neural.is_some(),
                Model::Fused => true,
            })
            .collect();
        let names = feature_names(model);
        let dropped: Vec<usize> = (0..names.len())
            .filter(|&i| args.drop.iter().any(|d| d == names[i]))
            .collect();
        let x: Vec<Vec<f64>> = rows
            .iter()
            .map(|c| {
                let mut x = features(model, &c.evidence, ctx(c));
                // A constant column gets weight 0 in the fit.
                dropped.iter().for_each(|&i| x[i] = 0.0);
                x
            })
            .collect();
        let y: Vec<bool> = rows.iter().map(|c| c.right).collect();
        let w: Vec<f64> = rows
            .iter()
            .map(|c| if c.unknown { args.unknown_weight } else { 1.0 })
            .collect();
        let l = Logistic::fit(&names, &x, &y, &w, args.l2).with_context(|| format!("fitting the {model:?} model"))?;
        Ok((l, rows.len(), y.iter().filter(|v| **v).count()))
    };
    let (landmarks, n_lm, p_lm) = fit(Model::Landmarks)?;
    let (neural, n_nn, p_nn) = fit(Model::Neural)?;
    let (fused, n_fu, p_fu) = fit(Model::Fused)?;
    let cal = Calibrator {
        version: "calibrator-1".into(),
        encoder: encoder.info().version.clone(),
        trained_on: sources.clone(),
        unknown_weight: args.unknown_weight,
        library_hours,
        landmarks,
        neural,
        fused,
    };
    cal.validate()?;
    let predicted: Vec<(f64, bool)> = candidates
        .iter()
        .map(|c| (cal.confidence(Model::Fused, &c.evidence, ctx(c)), c.right))
        .collect();
    let (bins, ece) = reliability(&predicted, 10);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    sampleid_fsio::atomic_write(&args.out, serde_json::to_string_pretty(&cal)?.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let stem = args.out.with_extension("");
    let png = std::path::PathBuf::from(format!("{}-reliability.png", stem.display()));
    sampleid_report::reliability_chart(
        &png,
        &format!("fused model, training candidates ({}), ECE {ece:.3}", predicted.len()),
        &bins,
    )?;
    let mut card = format!(
        "# {} (the fused confidence's calibrator)\n\nWritten by `sampleid train calibrator`. \
         Three logistic regressions over standardised features (weights below are per standard \
         deviation), L2 penalty {}, unknown clips' candidates weighted {} (the confidence is \
         calibrated for a stream with that many times the benchmarks' share of unknown clips); \
         encoder `{}`.\n\nTrained on (validation split only):\n\n",
        cal.version, args.l2, args.unknown_weight, cal.encoder
    );
    for s in &sources {
        card.push_str(&format!("- {s}\n"));
    }
    card.push_str(&format!(
        "\nLibraries of {:.2}–{:.2} h (`ln_library_hours`; a smaller or larger library is taken as the nearest of these).\n",
        library_hours[0], library_hours[1]
    ));
    card.push_str(&format!(
        "\n| model | candidates | right |\n|---|--:|--:|\n| landmarks | {n_lm} | {p_lm} |\n\
         | neural | {n_nn} | {p_nn} |\n| fused | {n_fu} | {p_fu} |\n\n\
         Reliability of the fused model on its training candidates: ECE {ece:.3} \
         (`{}`; the test benchmark's is in `docs/identification.md`).\n\n| predicted (mean) | observed | count |\n|--:|--:|--:|\n",
        png.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
    ));
    for (p, o, n) in bins.iter().filter(|b| b.2 > 0) {
        card.push_str(&format!("| {p:.3} | {o:.3} | {n} |\n"));
    }
    for (name, l) in [
        ("landmarks", &cal.landmarks),
        ("neural", &cal.neural),
        ("fused", &cal.fused),
    ] {
        card.push_str(&format!("\n## {name}\n\n| feature | weight |\n|---|--:|\n"));
        for (f, w) in l.features.iter().zip(&l.weights) {
            card.push_str(&format!("| {f} | {w:+.3} |\n"));
        }
        card.push_str(&format!("| (intercept) | {:+.3} |\n", l.bias));
    }
    let md = args.out.with_extension("md");
    sampleid_fsio::atomic_write(&md, card.as_bytes()).with_context(|| format!("cannot write {}", md.display()))?;
    eprintln!(
        "fitted on {} candidates ({} right); training ECE {ece:.3}; wrote {}, {}, {}",
        candidates.len(),
        p_fu,
        args.out.display(),
        md.display(),
        png.display()
    );
    Ok(())
}

/// `sampleid train shingles`: the PCA of the shingles libraries store, fitted
/// on the chroma of the corpus's training music, with its card.
pub fn shingles(
    args: &crate::cli::TrainShinglesArgs,
    cfg: &crate::config::Config,
    model_path: Option<&std::path::Path>,
    quiet: bool,
) -> Result<()> {
    use rayon::prelude::*;
    use sampleid_corpus::{Kind, Split};
    use sampleid_engine::Source;

    anyhow::ensure!(
        args.length > 0 && args.dims > 0,
        "--length and --dims must be at least 1"
    );
    let manifest = args.corpus.join("manifest.csv");
    let entries = sampleid_corpus::manifest::read(&manifest)
        .with_context(|| format!("cannot read {}; fetch the corpus first", manifest.display()))?;
    let music: Vec<_> = entries
        .iter()
        .filter(|e| e.split == Split::Train && (e.kind == Kind::Music || e.stem == "mix"))
        .collect();
    anyhow::ensure!(!music.is_empty(), "{} lists no training music", manifest.display());
    let step = music.len().div_ceil(args.files.max(1));
    let picked: Vec<_> = music.into_iter().step_by(step).collect();
    let engine = crate::cmd::engine(cfg, model_path)?;
    let bar = ProgressBar::with_draw_target(Some(picked.len() as u64), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files {wide_msg}")
            .expect("static template"),
    );
    let chroma: Vec<Vec<[u8; 12]>> = picked
        .par_iter()
        .filter_map(|e| {
            let r = engine.chroma(&Source::file(args.corpus.join(&e.path)), "train");
            bar.inc(1);
            match r {
                Ok(c) => Some(c.chroma),
                Err(err) => {
                    tracing::warn!("{}: {err}", e.path);
                    None
                }
            }
        })
        .collect();
    bar.finish_and_clear();
    let hours = chroma.iter().map(|c| c.len()).sum::<usize>() as f64 / cfg.engine.chroma.frame_rate() / 3600.0;
    let trained_on = format!(
        "{} music files ({hours:.2} h) of the training split of {}",
        chroma.len(),
        args.corpus.display()
    );
    let model = sampleid_matching::ShingleModel::fit(&chroma, args.length, args.dims, 200_000, &trained_on)?;
    // Share of the shingles' variance the kept components explain.
    let full = args.length * 12;
    let all: Vec<Vec<f32>> = chroma
        .iter()
        .flat_map(|c| {
            sampleid_matching::ShingleModel {
                pca: None,
                ..model.clone()
            }
            .reference(c)
        })
        .map(|(_, v)| v)
        .collect();
    let n = all.len().max(2) as f64;
    let mut total = 0.0;
    for d in 0..full {
        let mean = all.iter().map(|v| v[d] as f64).sum::<f64>() / n;
        total += all.iter().map(|v| (v[d] as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    }
    let kept: f64 = model.pca.as_ref().map_or(total, |p| p.variances.iter().sum());
    let explained = kept / total.max(f64::MIN_POSITIVE);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = serde_json::to_string(&model)?;
    std::fs::write(&args.out, &json).with_context(|| format!("cannot write {}", args.out.display()))?;
    let card = format!(
        "# Chroma shingle model (`{}`)\n\n\
         What a library stores for audio matching and chroma candidates: every second of a song's \
         chroma as a shingle of {} CENS features (1 per second, smoothing 41 frames, {} values), \
         reduced by PCA to {} dimensions.\n\n\
         - Fitted by `sampleid train shingles --corpus {} --length {} --dims {} --files {}`.\n\
         - Data: {}; {} shingles ({} used for the fit).\n\
         - Variance explained by the {} components: {:.1} %.\n\
         - Id (recorded beside a library's stored shingles; another id rebuilds them from the stored chroma): `{}`.\n",
        args.out.display(),
        model.length,
        full,
        model.dim(),
        args.corpus.display(),
        args.length,
        args.dims,
        args.files,
        trained_on,
        all.len(),
        model.shingles,
        model.dim(),
        100.0 * explained,
        model.id()
    );
    let card_path = args.out.with_extension("md");
    std::fs::write(&card_path, &card).with_context(|| format!("cannot write {}", card_path.display()))?;
    println!(
        "{}: {} shingles of {trained_on}, {} → {} dimensions, {:.1} % of the variance",
        args.out.display(),
        all.len(),
        full,
        model.dim(),
        100.0 * explained
    );
    Ok(())
}
