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
    let ea = enc.embed(&a).unwrap();
    let eb = enc.embed(&b).unwrap();
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
    let (mut pos, mut neg, mut aa, mut hits) = (0.0, 0.0, 0.0, 0);
    let n = pairs.len();
    for i in 0..n {
        pos += dot(&ea[i].fingerprint, &eb[i].fingerprint);
        let mut best = (0, f32::MIN);
        for j in 0..n {
            let s = dot(&eb[i].fingerprint, &ea[j].fingerprint);
            if s > best.1 {
                best = (j, s);
            }
            if j != i {
                neg += s;
                aa += dot(&ea[i].fingerprint, &ea[j].fingerprint);
            }
        }
        if best.0 == i {
            hits += 1;
        }
    }
    let m = (n * (n - 1)) as f32;
    println!(
        "pos {:.3} neg {:.3} anchor-anchor {:.3} top1 {}/{}",
        pos / n as f32,
        neg / m,
        aa / m,
        hits,
        n
    );
    // Training mode (batch statistics) from the f32 checkpoint.
    if let Some(ck) = args.get(3) {
        use burn::prelude::*;
        use burn::store::{ModuleSnapshot, SafetensorsStore};
        let dev = burn::prelude::Device::flex().autodiff();
        let mut model = sampleid_encoder::EncoderModel::new(enc.config(), &dev);
        model.load_from(&mut SafetensorsStore::from_file(ck)).unwrap();
        let flat = |v: &Vec<&[f32]>| v.iter().flat_map(|s| s.iter().copied()).collect::<Vec<f32>>();
        let za = model
            .forward(Tensor::<3>::from_data(TensorData::new(flat(&a), [n, 64, 128]), &dev))
            .fingerprint;
        let zb = model
            .forward(Tensor::<3>::from_data(TensorData::new(flat(&b), [n, 64, 128]), &dev))
            .fingerprint;
        let s = za
            .clone()
            .matmul(zb.transpose())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let s2 = za
            .clone()
            .matmul(za.transpose())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let (mut pos, mut neg, mut aa, mut hits) = (0.0, 0.0, 0.0, 0);
        for i in 0..n {
            pos += s[i * n + i];
            let best = (0..n).max_by(|&x, &y| s[x * n + i].total_cmp(&s[y * n + i])).unwrap();
            if best == i {
                hits += 1;
            }
            for j in 0..n {
                if j != i {
                    neg += s[i * n + j];
                    aa += s2[i * n + j];
                }
            }
        }
        println!(
            "train-mode: pos {:.3} neg {:.3} anchor-anchor {:.3} top1 {}/{}",
            pos / n as f32,
            neg / m,
            aa / m,
            hits,
            n
        );
    }
    println!("fp0 {:?}", &ea[0].fingerprint[..8]);
    println!("fp1 {:?}", &ea[1].fingerprint[..8]);
}
