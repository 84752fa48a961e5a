//! `sampleid train`: model training.

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sampleid_encoder::EncoderConfig;
use sampleid_train::{EncoderTraining, RerankerTraining, train_encoder, train_reranker};

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

pub fn encoder(args: &TrainEncoderArgs, quiet: bool) -> Result<()> {
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
    Ok(())
}

/// `sampleid train reranker`: the classifier for the encoder in use.
pub fn reranker(args: &TrainRerankerArgs, model_path: Option<&std::path::Path>, quiet: bool) -> Result<()> {
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
