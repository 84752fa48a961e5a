//! Times inference and one training step of an encoder size:
//! `cargo run --release -p sampleid-encoder --example speed -- small 64`
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use sampleid_encoder::{EncoderConfig, EncoderModel, nt_xent};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let size = std::env::args().nth(1).unwrap_or("small".into());
    let b: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let mut cfg = if size == "full" {
        EncoderConfig::full()
    } else {
        EncoderConfig::small()
    };
    if std::env::args().any(|a| a == "nograph") {
        cfg.graph = false;
    }
    if let Some(b) = std::env::args().find(|a| a.starts_with("blocks=")) {
        cfg.blocks = b[7..].split(',').map(|x| x.parse().unwrap()).collect();
    }
    if let Some(k) = std::env::args().find(|a| a.starts_with("k=")) {
        cfg.k = k[2..].parse().unwrap();
    }
    let infer = Device::flex();
    let model = EncoderModel::new(&cfg, &infer).valid();
    let x = Tensor::<3>::random([b, 64, 128], Distribution::Uniform(0.0, 1.0), &infer);
    let mut t = vec![];
    for _ in 0..6 {
        let s = Instant::now();
        let y = model.forward(x.clone());
        let _ = y.fingerprint.into_data();
        t.push(s.elapsed().as_secs_f64());
    }
    let inf = median(t[1..].to_vec());
    println!(
        "{size} graph={} params {}: inference B={b}: {:.1} ms = {:.0} segments/s = {:.0}x realtime (0.512 s hop)",
        cfg.graph,
        model.num_params(),
        inf * 1e3,
        b as f64 / inf,
        b as f64 / inf * 0.512
    );
    let dev = Device::flex().autodiff();
    let mut model = EncoderModel::new(&cfg, &dev);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let x1 = Tensor::<3>::random([b, 64, 128], Distribution::Uniform(0.0, 1.0), &dev);
    let x2 = (x1.clone() + Tensor::<3>::random([b, 64, 128], Distribution::Uniform(0.0, 0.1), &dev)).clamp(0.0, 1.0);
    let mut t = vec![];
    for _ in 0..4 {
        let s = Instant::now();
        let loss = nt_xent(
            model.forward(x1.clone()).fingerprint,
            model.forward(x2.clone()).fingerprint,
            0.05,
            None,
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        t.push(s.elapsed().as_secs_f64());
    }
    let st = median(t[1..].to_vec());
    println!(
        "train step B={b} pairs: {:.0} ms = {:.1} steps/s = {:.0} pairs/s",
        st * 1e3,
        1.0 / st,
        b as f64 / st
    );
}
