//! `sampleid genre`: what kind of music a track is (GraphSAGE on a k-NN
//! graph of tracks; `sampleid-genre`), its labelled data and its evaluation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use sampleid_genre::Classifier;
use sampleid_genre::eval;
use serde::{Deserialize, Serialize};

use crate::cli::{GenreDatasetArgs, GenreEvalArgs, GenrePredictArgs, GenreSource, GenreTrainArgs};
use crate::config::Config;
use crate::engine::Engine;

/// File name of a library's classifier (with `.json` beside it).
pub const MODEL_FILE: &str = "genre.safetensors";

/// One row of a labels file.
#[derive(Debug, Clone)]
struct Row {
    path: PathBuf,
    label: String,
    group: String,
}

/// Splits one CSV line (fields may be quoted, `""` is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Reads `path,label[,group]` (header required); relative paths are taken
/// from the file's directory; without a group column each track is its own.
fn read_labels(file: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(lines.next().unwrap_or_default());
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(p), Some(l)) = (col("path"), col("label")) else {
        bail!(
            "{}: the first line must name the columns path,label[,group]",
            file.display()
        );
    };
    let g = col("group");
    let base = file.parent().unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let f = csv_fields(line);
        let (Some(path), Some(label)) = (f.get(p), f.get(l)) else {
            bail!("{} line {}: expected {} fields", file.display(), n + 2, header.len());
        };
        if label.trim().is_empty() {
            bail!("{} line {}: empty label", file.display(), n + 2);
        }
        let path = base.join(path);
        let group = g
            .and_then(|g| f.get(g))
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| path.display().to_string());
        rows.push(Row {
            path,
            label: label.trim().to_string(),
            group,
        });
    }
    if rows.is_empty() {
        bail!("{} has no labelled tracks", file.display());
    }
    Ok(rows)
}

/// What the feature vectors are.
fn feature_kind(fingerprints: Option<&Engine>) -> String {
    let track = format!("track-{}", sampleid_features::track_feature_names().len());
    match fingerprints {
        Some(e) => format!("{track}+fingerprint-mean:{}", e.encoder.info().version),
        None => track,
    }
}

/// Whole-track features of one file: the track descriptor and, with an
/// engine, the normalised mean of its fingerprints.
fn features_of(path: &Path, cfg: &Config, engine: Option<&Engine>) -> Result<Vec<f32>> {
    let open = || sampleid_audio::AudioStream::open(path, &cfg.audio);
    features_of_source(&open, &path.display().to_string(), cfg, engine)
}

/// [`features_of`] for audio that `open` decodes (a file, an upload); it is
/// opened twice when fingerprints are wanted.
pub fn features_of_source(
    open: &dyn Fn() -> Result<sampleid_audio::AudioStream, sampleid_audio::AudioError>,
    name: &str,
    cfg: &Config,
    engine: Option<&Engine>,
) -> Result<Vec<f32>> {
    let mut stream = open()?;
    let mut samples = Vec::new();
    while let Some(block) = stream.next_block()? {
        samples.extend_from_slice(block);
    }
    if samples.iter().all(|v| v.abs() < crate::engine::SILENCE_PEAK) {
        return Err(crate::engine::Silent {
            name: name.to_string(),
            what: "classify",
        }
        .into());
    }
    let mut v = sampleid_features::track_features(&samples, &cfg.frontend)?;
    if let Some(engine) = engine {
        let dim = engine.encoder.config().out_dim;
        let mut sum = vec![0.0f32; dim];
        engine.embed_stream(open()?, name, None, None, &mut |batch| {
            for e in batch {
                for (s, x) in sum.iter_mut().zip(&e.fingerprint) {
                    *s += x;
                }
            }
            Ok(())
        })?;
        let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.extend(sum.iter().map(|x| x / norm));
    }
    Ok(v)
}

/// The classifier saved next to a library, if any, checked against the
/// encoder in use when it needs fingerprints.
pub fn library_classifier(db: &Path, engine: &Engine) -> Result<Option<Classifier>> {
    let path = db.join(MODEL_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let c = Classifier::load(&path).with_context(|| format!("cannot load the genre classifier {}", path.display()))?;
    if c.info.features.contains("+fingerprint") && feature_kind(Some(engine)) != c.info.features {
        bail!(
            "the genre classifier {} was trained on {} but the encoder in use gives {}; retrain it",
            path.display(),
            c.info.features,
            feature_kind(Some(engine))
        );
    }
    Ok(Some(c))
}

/// A cache of features next to the labels file, keyed by path, size and
/// modification time, so that evaluation and training share the decoding.
#[derive(Default, Serialize, Deserialize)]
struct Cache {
    kind: String,
    rows: HashMap<String, (u64, u64, Vec<f32>)>,
}

fn stamp(path: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    let t = m.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some((m.len(), t))
}

/// Features of every row (in parallel, cached); rows that fail are reported and dropped.
fn features(
    rows: Vec<Row>,
    labels_file: &Path,
    cfg: &Config,
    engine: Option<&Engine>,
    quiet: bool,
) -> Result<(Vec<Row>, Vec<Vec<f32>>, String)> {
    let kind = feature_kind(engine);
    let cache_path = labels_file.with_extension(format!(
        "features-{}.json",
        if engine.is_some() { "fp" } else { "track" }
    ));
    let mut cache: Cache = std::fs::read(&cache_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|c: &Cache| c.kind == kind)
        .unwrap_or_default();
    cache.kind = kind.clone();
    let bar = crate::progress::files_bar(rows.len() as u64, quiet);
    bar.set_message("track features");
    let got: Vec<Result<Vec<f32>>> = rows
        .par_iter()
        .map(|r| {
            let key = r.path.display().to_string();
            let st = stamp(&r.path);
            let v = match (cache.rows.get(&key), st) {
                (Some((len, t, v)), Some((l2, t2))) if *len == l2 && *t == t2 => Ok(v.clone()),
                _ => features_of(&r.path, cfg, engine),
            };
            bar.inc(1);
            v
        })
        .collect();
    bar.finish_and_clear();
    let (mut kept, mut out) = (Vec::new(), Vec::new());
    for (r, v) in rows.into_iter().zip(got) {
        match v {
            Ok(v) => {
                if let Some((len, t)) = stamp(&r.path) {
                    cache.rows.insert(r.path.display().to_string(), (len, t, v.clone()));
                }
                kept.push(r);
                out.push(v);
            }
            Err(e) => eprintln!("error: {}: {e:#} (left out)", r.path.display()),
        }
    }
    let tmp = cache_path.with_extension("json.part");
    if std::fs::write(&tmp, serde_json::to_vec(&cache)?).is_ok() {
        let _ = std::fs::rename(&tmp, &cache_path);
    }
    Ok((kept, out, kind))
}

fn engine_for(fingerprints: bool, cfg: &Config, model: Option<&Path>) -> Result<Option<Engine>> {
    fingerprints.then(|| Engine::load(cfg, model)).transpose()
}

/// Where a classifier lives: next to a library, or a file.
fn model_path(db: Option<&Path>, file: Option<&Path>) -> Result<PathBuf> {
    match (db, file) {
        (_, Some(f)) => Ok(f.to_path_buf()),
        (Some(db), None) => Ok(db.join(MODEL_FILE)),
        (None, None) => bail!("say where the classifier is: --db DIR (next to a library) or --classifier FILE"),
    }
}

/// `sampleid genre train`.
pub fn train(args: &GenreTrainArgs, cfg: &Config, model: Option<&Path>, quiet: bool) -> Result<()> {
    let out = model_path(args.db.as_deref(), args.classifier.as_deref())?;
    if let Some(db) = &args.db
        && !db.join("library.sqlite").exists()
    {
        bail!(
            "{} is not a sampleid library; create it with `sampleid index --db {}` or use --classifier FILE",
            db.display(),
            db.display()
        );
    }
    let engine = engine_for(args.fingerprints, cfg, model)?;
    let rows = read_labels(&args.labels)?;
    let (rows, x, kind) = features(rows, &args.labels, cfg, engine.as_ref(), quiet)?;
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let names: Vec<String> = rows.iter().map(|r| r.path.display().to_string()).collect();
    let c = Classifier::train(&x, &labels, &names, &kind, &cfg.genre)?;
    c.save(&out)?;
    let summary = serde_json::json!({
        "classifier": out.display().to_string(), "tracks": rows.len(), "classes": c.info.classes,
        "features": kind, "config": cfg.genre,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "trained GraphSAGE on {} tracks, {} classes ({}), features {}; saved {}",
            rows.len(),
            c.info.classes.len(),
            c.info.classes.join(", "),
            kind,
            out.display()
        );
    }
    Ok(())
}

/// `sampleid genre predict`; returns the number of files that failed.
pub fn predict(args: &GenrePredictArgs, cfg: &Config, model: Option<&Path>) -> Result<usize> {
    let path = model_path(args.db.as_deref(), args.classifier.as_deref())?;
    let c = Classifier::load(&path).with_context(|| {
        format!(
            "no genre classifier at {}; train one with `sampleid genre train --labels LABELS.csv`",
            path.display()
        )
    })?;
    let engine = if c.info.features.contains("+fingerprint") {
        let e = Engine::load(cfg, model)?;
        if feature_kind(Some(&e)) != c.info.features {
            bail!(
                "the classifier was trained on {} but the encoder in use gives {}",
                c.info.features,
                feature_kind(Some(&e))
            );
        }
        Some(e)
    } else {
        None
    };
    let mut failed = 0;
    for file in &args.files {
        let name = file.display().to_string();
        let r = features_of(file, cfg, engine.as_ref()).and_then(|v| Ok(c.predict(&[v])?.remove(0)));
        match r {
            Ok(p) if args.json => {
                println!(
                    "{}",
                    serde_json::json!({"input": name, "label": p.label, "probability": p.probability, "classes": p.classes, "neighbours": p.neighbours})
                );
            }
            Ok(p) => {
                let others: Vec<String> = p.classes[1..]
                    .iter()
                    .take(2)
                    .map(|(c, q)| format!("{c} {:.0} %", 100.0 * q))
                    .collect();
                println!(
                    "{name}: {} ({:.0} %; then {})",
                    p.label,
                    100.0 * p.probability,
                    others.join(", ")
                );
            }
            Err(e) => {
                failed += 1;
                if args.json {
                    println!("{}", serde_json::json!({"input": name, "error": format!("{e:#}")}));
                }
                eprintln!("error: {name}: {e:#}");
            }
        }
    }
    Ok(failed)
}

/// `sampleid genre eval`: k-fold cross-validation of GraphSAGE, k-NN vote
/// and the MLP on the same features and folds; `report.md`, `summary.json`
/// and one confusion matrix PNG per method in `--out`.
pub fn evaluate(args: &GenreEvalArgs, cfg: &Config, model: Option<&Path>, quiet: bool) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let engine = engine_for(args.fingerprints, cfg, model)?;
    let rows = read_labels(&args.labels)?;
    let (rows, x, kind) = features(rows, &args.labels, cfg, engine.as_ref(), quiet)?;
    let mut classes: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    classes.sort();
    classes.dedup();
    let labels: Vec<usize> = rows
        .iter()
        .map(|r| classes.binary_search(&r.label).expect("listed"))
        .collect();
    let groups: Vec<String> = rows
        .iter()
        .map(|r| {
            if args.ignore_groups {
                r.path.display().to_string()
            } else {
                r.group.clone()
            }
        })
        .collect();
    let fold_of = eval::folds(&labels, &groups, args.folds);
    let bar = crate::progress::files_bar(args.folds as u64, quiet);
    bar.set_message("folds");
    let results = eval::cross_validate(
        &x,
        &labels,
        classes.len(),
        &fold_of,
        &cfg.genre,
        args.transductive,
        &|d, _| bar.set_position(d as u64),
    )?;
    bar.finish_and_clear();
    let mut per_class = vec![0usize; classes.len()];
    for &l in &labels {
        per_class[l] += 1;
    }
    let majority = *per_class.iter().max().unwrap_or(&0) as f64 / labels.len().max(1) as f64;
    let mut md = format!(
        "# Genre / style classification: {}-fold cross-validation\n\n\
         Labels: `{}` ({} tracks, {} groups, {} classes); features: {kind}; {}; {}.\n\
         Settings: {}.\n\nMajority-class accuracy: {:.1} %.\n\n\
         | method | accuracy | fold mean ± std |\n|---|--:|--:|\n",
        args.folds,
        args.labels.display(),
        rows.len(),
        groups.iter().collect::<std::collections::HashSet<_>>().len(),
        classes.len(),
        if args.ignore_groups {
            "groups ignored (each track is its own)"
        } else {
            "folds keep groups together"
        },
        if args.transductive {
            "transductive (the graph covers all tracks' features)"
        } else {
            "inductive (test tracks join the training graph)"
        },
        serde_json::to_string(&cfg.genre)?,
        100.0 * majority
    );
    for r in &results {
        let mean = r.fold_accuracy.iter().sum::<f64>() / r.fold_accuracy.len().max(1) as f64;
        md.push_str(&format!(
            "| {} | {:.1} % | {:.1} ± {:.1} % |\n",
            r.method.name(),
            100.0 * r.accuracy,
            100.0 * mean,
            100.0 * r.fold_std
        ));
        let file = args.out.join(format!(
            "confusion-{}.png",
            serde_json::to_value(r.method)?.as_str().unwrap_or("method")
        ));
        sampleid_report::confusion_matrix(
            &file,
            &format!(
                "{}: {:.1} % ({}-fold CV)",
                r.method.name(),
                100.0 * r.accuracy,
                args.folds
            ),
            &classes,
            &r.confusion,
        )
        .with_context(|| format!("cannot draw {}", file.display()))?;
    }
    md.push_str("\nClasses: ");
    md.push_str(
        &classes
            .iter()
            .zip(&per_class)
            .map(|(c, n)| format!("{c} ({n})"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    md.push('\n');
    std::fs::write(args.out.join("report.md"), &md)?;
    let summary = serde_json::json!({
        "labels": args.labels.display().to_string(), "tracks": rows.len(), "classes": classes,
        "features": kind, "folds": args.folds, "transductive": args.transductive, "ignore_groups": args.ignore_groups, "config": cfg.genre, "majority": majority, "results": results,
    });
    std::fs::write(args.out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    if args.json {
        println!("{summary}");
    } else {
        print!("{md}");
        println!("\nwritten: {}", args.out.display());
    }
    Ok(())
}

/// `sampleid genre dataset`.
pub fn dataset(args: &GenreDatasetArgs, quiet: bool) -> Result<()> {
    let labelled = match args.source {
        GenreSource::Grooves => {
            let opts = sampleid_bench::styles::StyleSetOptions {
                corpus: args.corpus.clone(),
                out: args.out.clone(),
                variants: args.variants,
                bars: args.bars,
                seed: args.seed,
            };
            let bar = crate::progress::files_bar(1, quiet);
            let l = sampleid_bench::styles::make_style_set(&opts, &|d, t| {
                bar.set_length(t as u64);
                bar.set_position(d as u64);
            })?;
            bar.finish_and_clear();
            l
        }
        GenreSource::Corpus => {
            std::fs::create_dir_all(&args.out)?;
            sampleid_bench::styles::corpus_style_labels(&args.corpus, &args.out.join("labels.csv"))?
        }
    };
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in &labelled {
        *counts.entry(l.label.as_str()).or_default() += 1;
    }
    println!(
        "{}: {} labelled tracks ({}); then: sampleid genre eval --labels {}",
        args.out.join("labels.csv").display(),
        labelled.len(),
        counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        args.out.join("labels.csv").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(csv_fields("a,b,c"), vec!["a", "b", "c"]);
        assert_eq!(
            csv_fields("\"x, y\",\"say \"\"hi\"\"\",z"),
            vec!["x, y", "say \"hi\"", "z"]
        );
    }
}
