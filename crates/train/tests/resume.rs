//! Training resumes exactly: 4 steps in one go give the same losses and the
//! same weights as 2 steps, a stop, and 2 more steps from the checkpoint.

mod common;

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use sampleid_encoder::{EncoderConfig, EncoderModel};
use sampleid_train::{EncoderTraining, train_encoder_on};

fn tiny() -> EncoderTraining {
    EncoderTraining {
        encoder: EncoderConfig {
            channels: vec![8, 16, 16, 16],
            blocks: vec![1, 1, 1, 1],
            embed_dim: 32,
            head_hidden: 32,
            ..EncoderConfig::small()
        },
        steps: 4,
        batch_size: 3,
        warmup_steps: 1,
        memory: 8,
        validate_every: 2,
        checkpoint_every: 2,
        validation_pairs: 3,
        validation_distractors: 3,
        ..EncoderTraining::default()
    }
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v.get("step")?.as_u64()?, v.get("loss")?.as_f64()?))
        })
        .collect()
}

/// Every float parameter of a checkpoint, in visiting order.
fn weights(path: &Path, cfg: &EncoderTraining) -> Vec<f32> {
    struct All(Vec<f32>);
    impl ModuleVisitor for All {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .extend(param.val().into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
        }
    }
    let mut model = EncoderModel::new(&cfg.encoder, &Device::flex());
    model.load_from(&mut SafetensorsStore::from_file(path)).unwrap();
    let mut all = All(Vec::new());
    model.visit(&mut all);
    all.0
}

#[test]
fn a_stopped_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let pool = common::pool(dir.path());
    let device = Device::flex().autodiff();
    let cfg = tiny();

    let straight = dir.path().join("straight");
    let s = train_encoder_on(&pool, &pool, &straight, &cfg, &device, &|_, _| true).unwrap();
    assert_eq!(s.steps, 4);

    let resumed = dir.path().join("resumed");
    // Stop after step 1 (not a checkpoint step: the stop writes one) ...
    let s = train_encoder_on(&pool, &pool, &resumed, &cfg, &device, &|r, _| r.step < 1).unwrap();
    assert_eq!(s.steps, 1);
    // ... go on to step 3, then pretend the process was killed during step 4
    // after writing its metrics line but before its checkpoint.
    let s = train_encoder_on(&pool, &pool, &resumed, &cfg, &device, &|r, _| r.step < 3).unwrap();
    assert_eq!(s.steps, 3);
    let state = std::fs::read_to_string(resumed.join("state.json")).unwrap();
    assert!(state.contains("\"step\": 3"), "{state}");
    let mut m = std::fs::read_to_string(resumed.join("metrics.jsonl")).unwrap();
    m.push_str("{\"step\":4,\"loss\":99.0,\"lr\":0.0,\"grad_norm\":0.0,\"elapsed_s\":0.0,\"pairs_per_s\":0.0}\n");
    std::fs::write(resumed.join("metrics.jsonl"), m).unwrap();
    let s = train_encoder_on(&pool, &pool, &resumed, &cfg, &device, &|_, _| true).unwrap();
    assert_eq!(s.steps, 4);

    let a = losses(&straight);
    let b = losses(&resumed);
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "the same losses step by step");
    let wa = weights(&straight.join("checkpoint.safetensors"), &cfg);
    let wb = weights(&resumed.join("checkpoint.safetensors"), &cfg);
    assert!(wa.len() > 1000);
    assert!(wa == wb, "the same final weights");
    assert!(straight.join("best.safetensors").exists() && straight.join("curve.png").exists());
    for run in [&straight, &resumed] {
        let leftovers: Vec<_> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| sampleid_fsio::is_temp(p) || p.extension().is_some_and(|x| x == "part"))
            .collect();
        assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
    }
    assert!(straight.join("checkpoint.optim").exists() && straight.join("checkpoint.memory").exists());

    // Another configuration in the same run directory is refused.
    let other = EncoderTraining { lr: 1e-3, ..cfg };
    assert!(train_encoder_on(&pool, &pool, &straight, &other, &device, &|_, _| true).is_err());
}
