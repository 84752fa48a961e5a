//! Builds the training-split cache and times pair generation:
//! `cargo run --release -p sampleid-train --example pairspeed -- corpus`
use std::time::Instant;
fn main() {
    let corpus = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or("corpus".into()));
    let t = Instant::now();
    let pool = sampleid_train::Pool::load(
        &corpus,
        &corpus.join(".cache16k"),
        sampleid_corpus::Split::Train,
        &|_, _| {},
    )
    .unwrap();
    println!(
        "pool: {} tracks, {} stem sets, {} noise, {} irs in {:.1} s",
        pool.music.len(),
        pool.stem_sets.len(),
        pool.noise.len(),
        pool.irs.len(),
        t.elapsed().as_secs_f64()
    );
    let maker = sampleid_train::PairMaker {
        pool: &pool,
        cfg: Default::default(),
        frontend: Default::default(),
    };
    for round in 0..3 {
        let t = Instant::now();
        let b = maker.batch(round, 64).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "64 pairs in {s:.2} s ({:.0} pairs/s); first kind {:?}",
            64.0 / s,
            b[0].kind
        );
    }
}
