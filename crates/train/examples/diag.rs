//! Diagnostic: similarity statistics of a model on validation pairs.
use std::path::Path;

use sampleid_corpus::Split;
use sampleid_encoder::Encoder;
use sampleid_features::FrontendConfig;
use sampleid_train::{PairConfig, PairMaker, Pool};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let corpus = Path::new(&args[1]);
    let enc = Encoder::load(Path::new(&args[2])).unwrap();
    let pool = Pool::load(corpus, &corpus.join(".cache16k"), Split::Validation, &|_, _| {}).unwrap();
    let maker = PairMaker {
        pool: &pool,
        cfg: PairConfig::default(),
        frontend: FrontendConfig::default(),
    };
    let pairs = maker.batch(99, 64).unwrap();
    let a: Vec<&[f32]> = pairs.iter().map(|p| p.anchor.as_slice()).collect();
    let b: Vec<&[f32]> = pairs.iter().map(|p| p.positive.as_slice()).collect();
    let n = pairs.len();
    let rows = |e: Vec<sampleid_encoder::Embedding>| e.into_iter().map(|e| e.fingerprint).collect::<Vec<_>>();
    report(
        "eval-mode",
        &rows(enc.embed(&a).unwrap()),
        &rows(enc.embed(&b).unwrap()),
    );
    // Training mode (batch statistics) from the f32 checkpoint.
    if let Some(ck) = args.get(3) {
        use burn::prelude::*;
        use burn::store::{ModuleSnapshot, SafetensorsStore};
        let dev = burn::prelude::Device::flex().autodiff();
        let mut model = sampleid_encoder::EncoderModel::new(enc.config(), &dev);
        model.load_from(&mut SafetensorsStore::from_file(ck)).unwrap();
        let embed = |v: &Vec<&[f32]>| -> Vec<Vec<f32>> {
            let flat: Vec<f32> = v.iter().flat_map(|s| s.iter().copied()).collect();
            let z = model
                .forward(Tensor::<3>::from_data(TensorData::new(flat, [n, 64, 128]), &dev))
                .fingerprint;
            let z = z.inner().into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
            z.chunks(z.len() / n).map(<[f32]>::to_vec).collect()
        };
        report("train-mode", &embed(&a), &embed(&b));
    }
}

/// Mean cosine of pairs, of unrelated (anchor, positive) and (anchor, anchor),
/// and in-batch top-1 of positives among anchors.
fn report(label: &str, ea: &[Vec<f32>], eb: &[Vec<f32>]) {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
    let n = ea.len();
    let (mut pos, mut neg, mut aa, mut hits) = (0.0, 0.0, 0.0, 0);
    for i in 0..n {
        pos += dot(&ea[i], &eb[i]);
        let best = (0..n).max_by(|&x, &y| dot(&eb[i], &ea[x]).total_cmp(&dot(&eb[i], &ea[y])));
        hits += usize::from(best == Some(i));
        for j in (0..n).filter(|&j| j != i) {
            neg += dot(&eb[i], &ea[j]);
            aa += dot(&ea[i], &ea[j]);
        }
    }
    let m = (n * (n - 1)) as f32;
    println!(
        "{label}: pos {:.3} neg {:.3} anchor-anchor {:.3} top1 {hits}/{n}",
        pos / n as f32,
        neg / m,
        aa / m
    );
}
