//! `sampleid genre`: what kind of music a track is (GraphSAGE on a k-NN
//! graph of tracks). `predict` adapts [`sampleid_engine::Engine::classify`];
//! `train`, `eval` and `dataset` are the lab's (feature `lab`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use sampleid_engine::{GENRE_MODEL_FILE, Source};

use crate::cli::GenrePredictArgs;
use crate::config::Config;

/// Where a classifier lives: next to a library, or a file.
fn model_path(db: Option<&Path>, file: Option<&Path>) -> Result<PathBuf> {
    match (db, file) {
        (_, Some(f)) => Ok(f.to_path_buf()),
        (Some(db), None) => Ok(db.join(GENRE_MODEL_FILE)),
        (None, None) => bail!("say where the classifier is: --db DIR (next to a library) or --classifier FILE"),
    }
}

/// `sampleid genre predict`; returns the number of files that failed.
pub fn predict(args: &GenrePredictArgs, cfg: &Config, model: Option<&Path>) -> Result<usize> {
    let path = model_path(args.db.as_deref(), args.classifier.as_deref())?;
    let engine = super::engine(cfg, model)?;
    let c = engine.load_classifier(&path)?;
    let mut failed = 0;
    for file in &args.files {
        match engine.classify(&c, &Source::file(file)) {
            Ok(p) if args.json => println!("{}", serde_json::to_string(&p)?),
            Ok(p) => {
                let others: Vec<String> = p.classes[1..]
                    .iter()
                    .take(2)
                    .map(|(c, q)| format!("{c} {:.0} %", 100.0 * q))
                    .collect();
                println!(
                    "{}: {} ({:.0} %; then {})",
                    p.input,
                    p.label,
                    100.0 * p.probability,
                    others.join(", ")
                );
            }
            Err(e) => {
                failed += 1;
                super::input_error("input", &file.display().to_string(), &e.into(), args.json);
            }
        }
    }
    Ok(failed)
}

/// Training, evaluation and labelled sets: the lab's side of `sampleid genre`.
#[cfg(feature = "lab")]
pub mod lab {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::time::UNIX_EPOCH;

    use anyhow::{Context, Result, bail};
    use rayon::prelude::*;
    use sampleid_engine::{Engine, Source};
    use sampleid_genre::Classifier;
    use sampleid_genre::eval;
    use serde::{Deserialize, Serialize};

    use super::model_path;
    use crate::cli::{GenreDatasetArgs, GenreEvalArgs, GenreSource, GenreTrainArgs};
    use crate::config::Config;

    /// One row of a labels file.
    #[derive(Debug, Clone)]
    struct Row {
        path: PathBuf,
        label: String,
        group: String,
    }

    /// Reads `path,label[,group]` (header required; the `csv` crate handles
    /// quoting); relative paths are taken from the file's directory; without
    /// a group column each track is its own.
    fn read_labels(file: &Path) -> Result<Vec<Row>> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_path(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let header = reader
            .headers()
            .with_context(|| format!("cannot read {}", file.display()))?
            .clone();
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(p), Some(l)) = (col("path"), col("label")) else {
            bail!(
                "{}: the first line must name the columns path,label[,group]",
                file.display()
            );
        };
        let g = col("group");
        let base = file.parent().unwrap_or(Path::new("."));
        let mut rows = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let f = record.with_context(|| format!("{} line {}", file.display(), n + 2))?;
            if f.iter().all(str::is_empty) {
                continue;
            }
            let (Some(path), Some(label)) = (f.get(p), f.get(l)) else {
                bail!("{} line {}: expected {} fields", file.display(), n + 2, header.len());
            };
            if label.is_empty() {
                bail!("{} line {}: empty label", file.display(), n + 2);
            }
            let path = base.join(path);
            let group = g
                .and_then(|g| f.get(g))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| path.display().to_string());
            rows.push(Row {
                path,
                label: label.to_string(),
                group,
            });
        }
        if rows.is_empty() {
            bail!("{} has no labelled tracks", file.display());
        }
        Ok(rows)
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
        engine: &Engine,
        fingerprints: bool,
        quiet: bool,
    ) -> Result<(Vec<Row>, Vec<Vec<f32>>, String)> {
        let kind = engine.genre_feature_kind(fingerprints);
        let cache_path =
            labels_file.with_extension(format!("features-{}.json", if fingerprints { "fp" } else { "track" }));
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
                    _ => engine
                        .track_features(&Source::file(&r.path), fingerprints)
                        .map_err(anyhow::Error::from),
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
                Err(e) => {
                    let name = r.path.display().to_string();
                    eprintln!("error: {name}: {} (left out)", crate::cmd::reason(&name, &e));
                }
            }
        }
        // A cache: losing it only costs time, so a failed write is not an error.
        let _ = sampleid_fsio::atomic_write(&cache_path, &serde_json::to_vec(&cache)?);
        Ok((kept, out, kind))
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
        let engine = crate::cmd::engine(cfg, model)?;
        let rows = read_labels(&args.labels)?;
        let (rows, x, kind) = features(rows, &args.labels, &engine, args.fingerprints, quiet)?;
        let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        let names: Vec<String> = rows.iter().map(|r| r.path.display().to_string()).collect();
        let c = Classifier::train(&x, &labels, &names, &kind, &cfg.engine.genre)?;
        c.save(&out)?;
        let summary = serde_json::json!({
            "classifier": out.display().to_string(), "tracks": rows.len(), "classes": c.info.classes,
            "features": kind, "config": cfg.engine.genre,
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

    /// `sampleid genre eval`: k-fold cross-validation of GraphSAGE, k-NN vote
    /// and the MLP on the same features and folds; `report.md`, `summary.json`
    /// and one confusion matrix PNG per method in `--out`.
    pub fn evaluate(args: &GenreEvalArgs, cfg: &Config, model: Option<&Path>, quiet: bool) -> Result<()> {
        std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
        let engine = crate::cmd::engine(cfg, model)?;
        let rows = read_labels(&args.labels)?;
        let (rows, x, kind) = features(rows, &args.labels, &engine, args.fingerprints, quiet)?;
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
            &cfg.engine.genre,
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
            serde_json::to_string(&cfg.engine.genre)?,
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
        sampleid_fsio::atomic_write(&args.out.join("report.md"), md.as_bytes())?;
        let summary = serde_json::json!({
            "labels": args.labels.display().to_string(), "tracks": rows.len(), "classes": classes,
            "features": kind, "folds": args.folds, "transductive": args.transductive, "ignore_groups": args.ignore_groups, "config": cfg.engine.genre, "majority": majority, "results": results,
        });
        sampleid_fsio::atomic_write(
            &args.out.join("summary.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
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
}
