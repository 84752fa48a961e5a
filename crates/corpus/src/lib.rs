//! The corpus: real music, stems, noise, speech and room impulse responses
//! from freely licensed Debian packages, with a manifest and a fixed
//! train/validation/test split. Used for training and for benchmarks; never
//! committed.
//!
//! Layout under the corpus directory:
//! ```text
//! debs/            downloaded .deb files (apt-get download, no installation)
//! files/PKG/…      the selected files, at their installed paths
//! render/modules/  tracker modules rendered with xmp: mix.wav + chNN.wav stems
//! render/grooves/  mma grooves rendered with rustysynth: mix.wav + family stems
//! tools/root/      xmp, libxmp, mma and a SoundFont, extracted from their .debs
//! .state/          per-step records, so that a re-run skips finished work
//! manifest.csv     one row per usable file (see [`manifest::Entry`])
//! rejected.csv     files left out, with the reason
//! ```
//! Every step is idempotent and resumable: outputs appear under their final
//! name only when complete.

pub mod archive;
pub mod debian;
pub mod grooves;
pub mod licence;
pub mod manifest;
pub mod modules;
pub mod table;
pub mod wav;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use regex::Regex;
use sampleid_audio::{AudioConfig, AudioStream};
use sha2::{Digest, Sha256};

pub use manifest::{Entry, Kind, Split};
pub use table::{Package, Rule, RuleKind, Table};

/// Errors of the corpus builder.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{tool} failed: {reason}")]
    Tool { tool: String, reason: String },
    #[error("{}: bad archive: {reason}", path.display())]
    Archive { path: PathBuf, reason: String },
    #[error("package table: {0}")]
    Table(String),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("MIDI: {0}")]
    Midi(String),
}

impl CorpusError {
    pub(crate) fn io(path: &Path, err: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            err,
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The corpus directory.
    pub dir: PathBuf,
    /// Only these packages (all when empty).
    pub only: Vec<String>,
    /// Leave out the packages marked heavy (large downloads per hour of music).
    pub skip_heavy: bool,
    /// Number of mma style files to render as stem sets (0: none).
    pub grooves: usize,
    /// Render tracker modules (needs xmp).
    pub modules: bool,
}

/// Counts after a build.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub entries: usize,
    pub rejected: usize,
    /// Hours per kind.
    pub hours: BTreeMap<String, f64>,
    /// Hours of music per split.
    pub music_hours_by_split: BTreeMap<String, f64>,
}

/// A file left out, with the reason: (path, reason).
type Rejection = (String, String);

/// A file's content hash and its decoded duration (or why it did not decode).
type Measured = (String, Result<f64, String>);

/// Minimum and maximum durations kept per kind.
fn duration_bounds(kind: Kind) -> (f64, f64) {
    match kind {
        Kind::Music => (30.0, 3.0 * 3600.0),
        Kind::Stem => (5.0, 3600.0),
        Kind::Noise => (1.0, 3600.0),
        Kind::Speech => (0.3, 600.0),
        Kind::Ir => (0.02, 10.0),
    }
}

/// A file selected by a rule, before measuring.
#[derive(Debug, Clone)]
struct Candidate {
    kind: Kind,
    package: String,
    /// Path relative to the corpus directory.
    path: String,
    group: String,
    stem_set: String,
    stem: String,
    style: String,
    origin: &'static str,
    licence: Option<String>,
}

/// Builds (or completes) the corpus and writes the manifest.
pub fn build(
    opts: &BuildOptions,
    table: &Table,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<Summary, CorpusError> {
    let dir = &opts.dir;
    for sub in ["debs", "files", "render", ".state", "tools"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| CorpusError::io(&dir.join(sub), e))?;
    }
    let packages: Vec<&Package> = table
        .ordered()
        .into_iter()
        .filter(|p| opts.only.is_empty() || opts.only.contains(&p.name))
        .filter(|p| !(opts.skip_heavy && p.heavy))
        .collect();

    // 1. Download and extract the selected files of every package.
    let mut selected: Vec<(usize, Vec<Selected>)> = Vec::new();
    for (i, pkg) in packages.iter().enumerate() {
        progress(&format!("fetch {}", pkg.name), i, packages.len());
        selected.push((i, fetch_package(dir, pkg)?));
    }
    progress("fetch", packages.len(), packages.len());

    // 2. Tools for rendering (only when needed).
    let needs_modules = opts.modules
        && selected
            .iter()
            .any(|(_, s)| s.iter().any(|f| f.kind == RuleKind::Module));
    let tools = if needs_modules || opts.grooves > 0 {
        Some(fetch_tools(dir)?)
    } else {
        None
    };

    // 3. Candidates from files, module renders and grooves.
    let mut candidates = Vec::new();
    let mut module_jobs = Vec::new();
    for (i, files) in &selected {
        let pkg = packages[*i];
        let copyright = read_copyright(dir, &pkg.name);
        for f in files {
            let licence = copyright
                .as_ref()
                .and_then(|c| c.licence_of(&f.match_path))
                .map(str::to_string);
            let style = pkg.style.clone().unwrap_or_default();
            match f.kind {
                RuleKind::Module => module_jobs.push((pkg.name.clone(), f.local.clone(), licence, style)),
                RuleKind::Stem => {
                    let folder = Path::new(&f.match_path)
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let set = format!("fof:{}{}", pkg.name, folder);
                    let stem = Path::new(&f.local)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("")
                        .to_string();
                    candidates.push(Candidate {
                        kind: Kind::Stem,
                        package: pkg.name.clone(),
                        path: f.local.clone(),
                        group: set.clone(),
                        stem_set: set,
                        stem,
                        style,
                        origin: "file",
                        licence,
                    });
                }
                k => {
                    let kind = match k {
                        RuleKind::Music => Kind::Music,
                        RuleKind::Noise => Kind::Noise,
                        RuleKind::Speech => Kind::Speech,
                        _ => Kind::Ir,
                    };
                    candidates.push(Candidate {
                        kind,
                        package: pkg.name.clone(),
                        path: f.local.clone(),
                        group: format!("{}:{}{}", kind_name(kind), pkg.name, f.match_path),
                        stem_set: String::new(),
                        stem: String::new(),
                        style,
                        origin: "file",
                        licence,
                    });
                }
            }
        }
    }
    let mut rejected: Vec<Rejection> = Vec::new();
    if let Some(tools) = &tools {
        if needs_modules {
            let done = std::sync::atomic::AtomicUsize::new(0);
            let rendered: Vec<_> = module_jobs
                .par_iter()
                .map(|(pkg, local, licence, style)| {
                    let stem = Path::new(local)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("module");
                    let out = dir.join("render/modules").join(pkg).join(stem);
                    let r = tools.xmp.render_all(&dir.join(local), &out);
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress("render modules", n, module_jobs.len());
                    (pkg, local, licence, style, r)
                })
                .collect();
            for (pkg, local, licence, style, r) in rendered {
                match r {
                    Ok(m) => {
                        let set = format!("mod:{pkg}/{local}");
                        let mut push = |path: &Path, kind: Kind, stem: &str| {
                            candidates.push(Candidate {
                                kind,
                                package: pkg.clone(),
                                path: rel(dir, path),
                                group: set.clone(),
                                stem_set: set.clone(),
                                stem: stem.to_string(),
                                style: style.clone(),
                                origin: "module-render",
                                licence: licence.clone(),
                            })
                        };
                        push(&m.mix, Kind::Music, "mix");
                        for (name, p) in &m.stems {
                            push(p, Kind::Stem, name);
                        }
                    }
                    Err(e) => rejected.push((local.clone(), e.to_string())),
                }
            }
        }
        if opts.grooves > 0 {
            render_all_grooves(dir, tools, opts.grooves, &mut candidates, &mut rejected, progress)?;
        }
    }

    // 4. Measure, filter, de-duplicate, split.
    let (entries, more_rejected) = measure(dir, candidates, table, progress)?;
    rejected.extend(more_rejected);
    manifest::write(&dir.join("manifest.csv"), &entries)?;
    write_rejected(&dir.join("rejected.csv"), &rejected)?;

    let mut summary = Summary {
        entries: entries.len(),
        rejected: rejected.len(),
        ..Default::default()
    };
    for e in &entries {
        *summary.hours.entry(kind_name(e.kind).to_string()).or_default() += e.duration_s / 3600.0;
        if e.kind == Kind::Music {
            *summary
                .music_hours_by_split
                .entry(format!("{:?}", e.split).to_lowercase())
                .or_default() += e.duration_s / 3600.0;
        }
    }
    Ok(summary)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Music => "music",
        Kind::Stem => "stem",
        Kind::Noise => "noise",
        Kind::Speech => "speech",
        Kind::Ir => "ir",
    }
}

fn rel(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

/// A file picked out of a package by a rule.
#[derive(Debug, Clone)]
struct Selected {
    kind: RuleKind,
    /// Installed path, or `ARCHIVE/MEMBER` for archive members.
    match_path: String,
    /// Path relative to the corpus directory.
    local: String,
}

/// Downloads a package and extracts the files its rules select, once: the
/// list of selected files is kept in `.state/PKG.tsv`, written last.
fn fetch_package(dir: &Path, pkg: &Package) -> Result<Vec<Selected>, CorpusError> {
    let state = dir.join(".state").join(format!("{}.tsv", pkg.name));
    let rules_key = format!("{:?}", pkg.rules);
    if let Ok(text) = std::fs::read_to_string(&state)
        && let Some((first, rest)) = text.split_once('\n')
        && first == rules_key
    {
        return Ok(rest
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, '\t');
                let kind = parse_rule_kind(it.next()?)?;
                Some(Selected {
                    kind,
                    match_path: it.next()?.to_string(),
                    local: it.next()?.to_string(),
                })
            })
            .collect());
    }
    let deb = debian::download(&pkg.name, &dir.join("debs"))?;
    let listing = debian::list(&deb)?;
    let root = dir.join("files").join(&pkg.name);
    let mut wanted: Vec<String> = Vec::new();
    let mut selected = Vec::new();
    let copyright = format!("/usr/share/doc/{}/copyright", pkg.name);
    if listing.iter().any(|(p, _)| *p == copyright) {
        wanted.push(copyright);
    }
    let mut archives: Vec<(String, Regex, RuleKind, Rule)> = Vec::new();
    for rule in &pkg.rules {
        let re = Regex::new(&rule.path).map_err(|e| CorpusError::Table(e.to_string()))?;
        match &rule.archive {
            Some(a) => {
                let are = Regex::new(a).map_err(|e| CorpusError::Table(e.to_string()))?;
                for (p, _) in listing.iter().filter(|(p, _)| are.is_match(p)) {
                    wanted.push(p.clone());
                    archives.push((p.clone(), re.clone(), rule.kind, rule.clone()));
                }
            }
            None => {
                for (p, _) in listing
                    .iter()
                    .filter(|(p, _)| re.is_match(p) && rule.accepts_extension(p))
                {
                    wanted.push(p.clone());
                    selected.push(Selected {
                        kind: rule.kind,
                        match_path: p.clone(),
                        local: rel(dir, &root.join(p.trim_start_matches('/'))),
                    });
                }
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    debian::extract(&deb, &root, &wanted)?;
    for (archive, member_re, kind, rule) in &archives {
        let local_archive = root.join(archive.trim_start_matches('/'));
        let out = PathBuf::from(format!("{}.d", local_archive.display()));
        if local_archive.exists() {
            archive::extract_matching(&local_archive, member_re, &out)?;
        }
        for member in list_files(&out) {
            let m = rel(&out, &member);
            if member_re.is_match(&m) && rule.accepts_extension(&m) {
                selected.push(Selected {
                    kind: *kind,
                    match_path: format!("{archive}/{m}"),
                    local: rel(dir, &member),
                });
            }
        }
    }
    // Archives are only containers: drop them once their members are out (0ad's is 3 GB).
    for (archive, ..) in &archives {
        let _ = std::fs::remove_file(root.join(archive.trim_start_matches('/')));
    }
    let mut text = rules_key + "\n";
    for s in &selected {
        text.push_str(&format!("{:?}\t{}\t{}\n", s.kind, s.match_path, s.local));
    }
    sampleid_fsio::atomic_write(&state, text.as_bytes()).map_err(|e| CorpusError::io(&state, e))?;
    Ok(selected)
}

fn parse_rule_kind(s: &str) -> Option<RuleKind> {
    Some(match s {
        "Music" => RuleKind::Music,
        "Module" => RuleKind::Module,
        "Stem" => RuleKind::Stem,
        "Noise" => RuleKind::Noise,
        "Speech" => RuleKind::Speech,
        "Ir" => RuleKind::Ir,
        _ => return None,
    })
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_none_or(|x| x != "part") && !sampleid_fsio::is_temp(&p) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn read_copyright(dir: &Path, pkg: &str) -> Option<licence::Copyright> {
    let p = dir
        .join("files")
        .join(pkg)
        .join(format!("usr/share/doc/{pkg}/copyright"));
    licence::Copyright::parse(&std::fs::read_to_string(p).ok()?)
}

/// Rendering tools extracted from their packages (nothing is installed).
struct Tools {
    xmp: modules::Xmp,
    mma: grooves::Mma,
    soundfont: PathBuf,
}

fn fetch_tools(dir: &Path) -> Result<Tools, CorpusError> {
    let root = dir.join("tools/root");
    for pkg in ["xmp", "libxmp4", "mma", "timgm6mb-soundfont"] {
        let marker = dir.join(".state").join(format!("tool-{pkg}"));
        if marker.exists() {
            continue;
        }
        let deb = debian::download(pkg, &dir.join("debs"))?;
        debian::extract_all(&deb, &root)?;
        sampleid_fsio::atomic_write(&marker, b"").map_err(|e| CorpusError::io(&marker, e))?;
    }
    let lib_dir = std::fs::read_dir(root.join("usr/lib"))
        .ok()
        .and_then(|rd| rd.flatten().map(|e| e.path()).find(|p| p.join("libxmp.so.4").exists()))
        .unwrap_or_else(|| root.join("usr/lib/x86_64-linux-gnu"));
    let bin = root.join("usr/bin/xmp");
    let lib_dirs = tool_libraries(dir, &root, &bin, "xmp", vec![lib_dir])?;
    Ok(Tools {
        xmp: modules::Xmp { bin, lib_dirs },
        mma: grooves::Mma {
            script: root.join("usr/bin/mma"),
            home: root.join("usr/share/mma"),
        },
        soundfont: root.join("usr/share/sounds/sf2/TimGM6mb.sf2"),
    })
}

/// The library directories `bin` (extracted from Debian package `package`)
/// runs with: `lib_dirs`, and beside them the packages of its dependency
/// closure that hold a shared library this machine lacks, extracted under
/// `root`. xmp links PulseAudio, which a server often does not have; without
/// this every tracker module was rejected ("libpulse-simple.so.0: cannot
/// open shared object file") and the corpus lost its module music and stems.
fn tool_libraries(
    dir: &Path,
    root: &Path,
    bin: &Path,
    package: &str,
    mut lib_dirs: Vec<PathBuf>,
) -> Result<Vec<PathBuf>, CorpusError> {
    let mut closure: Option<Vec<String>> = None;
    let mut tried = std::collections::HashSet::new();
    // Each package of the closure downloaded and listed once.
    let mut listed: std::collections::HashMap<String, (PathBuf, Vec<(String, u64)>)> = Default::default();
    loop {
        let missing = missing_libraries(bin, &lib_dirs)?;
        if missing.is_empty() {
            return Ok(lib_dirs);
        }
        let closure = match &closure {
            Some(c) => c,
            None => closure.insert(debian::dependency_closure(package)?),
        };
        let mut found = false;
        for pkg in closure {
            if tried.contains(pkg) {
                continue;
            }
            if !listed.contains_key(pkg) {
                let deb = debian::download(pkg, &dir.join("debs"))?;
                let files = debian::list(&deb)?;
                listed.insert(pkg.clone(), (deb, files));
            }
            let (deb, files) = &listed[pkg];
            let provides = files.iter().any(|(p, _)| {
                Path::new(p)
                    .file_name()
                    .and_then(|n| n.to_str())
                    // `list` gives regular files: the soname is usually a
                    // link to the versioned file (libfoo.so.0 → libfoo.so.0.1.2).
                    .is_some_and(|n| missing.iter().any(|m| provides_soname(n, m)))
            });
            if !provides {
                continue;
            }
            tried.insert(pkg.clone());
            // Symbolic links (the sonames) come with the whole package.
            debian::extract_all(deb, root)?;
            for (p, _) in files {
                let is_lib = Path::new(p)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(".so"));
                if let Some(d) = Path::new(p).parent().filter(|_| is_lib) {
                    let d = root.join(d.strip_prefix("/").unwrap_or(d));
                    if !lib_dirs.contains(&d) {
                        lib_dirs.push(d);
                    }
                }
            }
            found = true;
        }
        if !found {
            return Err(CorpusError::Tool {
                tool: package.to_string(),
                reason: format!(
                    "{} needs shared libraries that neither this machine nor the packages it depends on provide: {}",
                    bin.display(),
                    missing.join(", ")
                ),
            });
        }
    }
}

/// Whether a library file named `file` is, or is what links to, `soname`.
fn provides_soname(file: &str, soname: &str) -> bool {
    file.strip_prefix(soname)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Shared libraries `bin` needs that the dynamic linker does not find with
/// `lib_dirs` added (from `ldd`).
fn missing_libraries(bin: &Path, lib_dirs: &[PathBuf]) -> Result<Vec<String>, CorpusError> {
    let mut cmd = std::process::Command::new("ldd");
    cmd.arg(bin);
    if let Ok(path) = std::env::join_paths(lib_dirs) {
        cmd.env("LD_LIBRARY_PATH", path);
    }
    let out = cmd.output().map_err(|e| CorpusError::Tool {
        tool: "ldd".into(),
        reason: e.to_string(),
    })?;
    let mut missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("=> not found"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    missing.sort();
    missing.dedup();
    Ok(missing)
}

fn render_all_grooves(
    dir: &Path,
    tools: &Tools,
    limit: usize,
    candidates: &mut Vec<Candidate>,
    rejected: &mut Vec<Rejection>,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<(), CorpusError> {
    tools.mma.prepare()?;
    let mut f = std::fs::File::open(&tools.soundfont).map_err(|e| CorpusError::io(&tools.soundfont, e))?;
    let font = Arc::new(rustysynth::SoundFont::new(&mut f).map_err(|e| CorpusError::Midi(e.to_string()))?);
    let names: Vec<String> = tools.mma.grooves()?.into_iter().take(limit).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<_> = names
        .par_iter()
        .map(|name| {
            // Tempo, key and progression vary with the groove, deterministically.
            let h = Sha256::digest(name.as_bytes());
            let spec = grooves::GrooveSpec {
                groove: name.clone(),
                tempo: 80 + (h[0] as u32 % 60),
                transpose: (h[1] % 12) as i32 - 5,
                progression: grooves::PROGRESSIONS[h[2] as usize % grooves::PROGRESSIONS.len()]
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
                bars: 16,
            };
            let out = dir.join("render/grooves").join(name);
            let r = grooves::render_groove(&tools.mma, &font, &spec, &out);
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress("render grooves", n, names.len());
            (name, r)
        })
        .collect();
    for (name, r) in results {
        match r {
            Ok(g) => {
                let set = format!("groove:{name}");
                let licence = "GPL-2+ (mma groove library; TimGM6mb SoundFont GPL-2)".to_string();
                let mut push = |p: &Path, stem: &str| {
                    candidates.push(Candidate {
                        kind: Kind::Stem,
                        package: "mma".into(),
                        path: rel(dir, p),
                        group: set.clone(),
                        stem_set: set.clone(),
                        stem: stem.to_string(),
                        style: name.clone(),
                        origin: "groove-render",
                        licence: Some(licence.clone()),
                    })
                };
                push(&g.mix, "mix");
                for (fam, p) in &g.stems {
                    push(p, fam);
                }
            }
            Err(e) => rejected.push((format!("groove {name}"), e.to_string())),
        }
    }
    Ok(())
}

/// Hashes and decodes every candidate (cached by content hash in
/// `.state/durations.tsv`), applies the duration rules, removes duplicate
/// content and assigns splits.
fn measure(
    dir: &Path,
    candidates: Vec<Candidate>,
    table: &Table,
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<(Vec<Entry>, Vec<Rejection>), CorpusError> {
    let cache_path = dir.join(".state/durations.tsv");
    let cache: HashMap<String, Result<f64, String>> = std::fs::read_to_string(&cache_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, '\t');
            let (h, ok, v) = (it.next()?, it.next()?, it.next()?);
            Some((
                h.to_string(),
                if ok == "ok" {
                    Ok(v.parse().ok()?)
                } else {
                    Err(v.to_string())
                },
            ))
        })
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = candidates.len();
    let measured: Vec<(Candidate, Result<Measured, String>)> = candidates
        .into_par_iter()
        .map(|c| {
            let path = dir.join(&c.path);
            let r = sha256_file(&path).map_err(|e| e.to_string()).map(|h| {
                let d = cache.get(&h).cloned().unwrap_or_else(|| decoded_seconds(&path));
                (h, d)
            });
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(25) || n == total {
                progress("measure", n, total);
            }
            (c, r)
        })
        .collect();
    let mut new_cache = String::new();
    let mut seen: HashSet<(Kind, String)> = HashSet::new();
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    let licences: HashMap<&str, &str> = table
        .package
        .iter()
        .map(|p| (p.name.as_str(), p.licence.as_str()))
        .collect();
    for (c, r) in measured {
        let (hash, duration) = match r {
            Ok(x) => x,
            Err(e) => {
                rejected.push((c.path.clone(), e));
                continue;
            }
        };
        match &duration {
            Ok(d) => new_cache.push_str(&format!("{hash}\tok\t{d}\n")),
            Err(e) => new_cache.push_str(&format!("{hash}\terr\t{}\n", e.replace(['\t', '\n'], " "))),
        }
        let d = match duration {
            Ok(d) => d,
            Err(e) => {
                rejected.push((c.path.clone(), e));
                continue;
            }
        };
        let (lo, hi) = duration_bounds(c.kind);
        if d < lo || d > hi {
            rejected.push((
                c.path.clone(),
                format!("{d:.1} s is outside {lo}–{hi} s for {}", kind_name(c.kind)),
            ));
            continue;
        }
        if !seen.insert((c.kind, hash.clone())) {
            rejected.push((c.path.clone(), "duplicate content".into()));
            continue;
        }
        let licence = c
            .licence
            .clone()
            .or_else(|| licences.get(c.package.as_str()).map(|s| s.to_string()))
            .unwrap_or_default();
        entries.push(Entry {
            id: manifest::short_id(&kind_name(c.kind)[..1], &format!("{}|{}", c.package, c.path)),
            kind: c.kind,
            package: c.package,
            split: manifest::split_of(&c.group),
            path: c.path,
            duration_s: (d * 1000.0).round() / 1000.0,
            licence,
            group: c.group,
            stem_set: c.stem_set,
            stem: c.stem,
            style: c.style,
            origin: c.origin.to_string(),
            sha256: hash,
        });
    }
    sampleid_fsio::atomic_write(&cache_path, new_cache.as_bytes()).map_err(|e| CorpusError::io(&cache_path, e))?;
    // Stem sets whose mix was rejected are dropped whole, so every set is complete.
    let bad_sets: HashSet<String> = rejected_sets(&entries);
    entries.retain(|e| e.stem_set.is_empty() || !bad_sets.contains(&e.stem_set));
    entries.sort_by(|a, b| (a.kind as u8, &a.package, &a.path).cmp(&(b.kind as u8, &b.package, &b.path)));
    Ok((entries, rejected))
}

/// Stem sets with fewer than two stems (nothing to pair).
fn rejected_sets(entries: &[Entry]) -> HashSet<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in entries.iter().filter(|e| !e.stem_set.is_empty() && e.stem != "mix") {
        *count.entry(&e.stem_set).or_default() += 1;
    }
    entries
        .iter()
        .filter(|e| !e.stem_set.is_empty())
        .map(|e| e.stem_set.as_str())
        .filter(|s| count.get(s).copied().unwrap_or(0) < 2)
        .map(str::to_string)
        .collect()
}

/// SHA-256 of bytes, as lowercase hex (the library's content hash).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    sampleid_index::hash::sha256_bytes(bytes)
}

/// SHA-256 of a file's bytes, as lowercase hex (the library's content hash).
pub fn sha256_file(path: &Path) -> Result<String, CorpusError> {
    sampleid_index::hash::sha256_file(path).map_err(|e| CorpusError::io(path, e))
}

fn decoded_seconds(path: &Path) -> Result<f64, String> {
    let mut s = AudioStream::open(path, &AudioConfig::default()).map_err(|e| e.to_string())?;
    while s.next_block().map_err(|e| e.to_string())?.is_some() {}
    Ok(s.position_s())
}

fn write_rejected(path: &Path, rows: &[Rejection]) -> Result<(), CorpusError> {
    let mut file = sampleid_fsio::AtomicFile::create(path).map_err(|e| CorpusError::io(path, e))?;
    let mut w = csv::Writer::from_writer(&mut file);
    w.write_record(["path", "reason"])
        .map_err(|e| CorpusError::Manifest(e.to_string()))?;
    for (p, r) in rows {
        w.write_record([p, r])
            .map_err(|e| CorpusError::Manifest(e.to_string()))?;
    }
    w.flush().map_err(|e| CorpusError::io(path, e))?;
    drop(w);
    file.commit().map_err(|e| CorpusError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versioned_library_file_provides_its_soname() {
        assert!(provides_soname("libpulse-simple.so.0.1.1", "libpulse-simple.so.0"));
        assert!(provides_soname("libpulse.so.0", "libpulse.so.0"));
        assert!(!provides_soname("libpulse-simple.so.0.1.1", "libpulse.so.0"));
        assert!(!provides_soname("libpulse.so.00", "libpulse.so.0"));
    }

    #[test]
    fn listing_skips_partial_files_and_write_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a");
        std::fs::create_dir_all(&sub).unwrap();
        for name in ["x.ogg", "y.part", ".x.tmp-12-0.ogg"] {
            std::fs::write(sub.join(name), b"").unwrap();
        }
        assert_eq!(list_files(dir.path()), [sub.join("x.ogg")]);
    }
}
