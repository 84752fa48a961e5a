//! Embedding sampleid in a Rust program: open a library with the built-in
//! models and name the songs a clip contains.
//!
//! `cargo run --example identify -- LIBRARY_DIR CLIP`

use sampleid_engine::{Engine, IdentifyOptions, Library, ModelSource, Settings, Source};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, clip] = args.as_slice() else {
        return Err("usage: identify LIBRARY_DIR CLIP".into());
    };
    let engine = Engine::load(Settings::default(), ModelSource::Default)?;
    let library = Library::open(db.as_ref(), &engine)?;
    let answer = library.identify(&Source::file(clip), &IdentifyOptions::default())?;
    println!(
        "{} ({:.1} s): {} match(es)",
        answer.query,
        answer.duration_s,
        answer.matches.len()
    );
    for m in &answer.matches {
        println!(
            "  {}  confidence {:.1} % ({})  query {:.1} s = reference {:.1} s",
            m.reference,
            100.0 * m.confidence.unwrap_or(m.score),
            m.stages.join(" + "),
            m.query_start,
            m.reference_start
        );
    }
    Ok(())
}
