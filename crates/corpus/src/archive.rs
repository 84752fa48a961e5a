//! Members of .zip/.pk3 archives inside packages (0ad, UFO:AI, OpenArena).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use regex::Regex;
use sampleid_fsio::AtomicFile;

use crate::CorpusError;

/// Extracts the members of `archive` whose names match `member` under `dest`
/// (keeping their paths); returns the member names extracted.
pub fn extract_matching(archive: &Path, member: &Regex, dest: &Path) -> Result<Vec<String>, CorpusError> {
    let file = File::open(archive).map_err(|e| CorpusError::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| CorpusError::Archive {
        path: archive.to_path_buf(),
        reason: e.to_string(),
    })?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| member.is_match(n) && !n.ends_with('/'))
        .collect();
    for name in &names {
        // Never let a member name escape `dest`.
        if name.starts_with('/') || name.split('/').any(|c| c == "..") {
            continue;
        }
        let out = dest.join(name);
        if out.exists() {
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CorpusError::io(parent, e))?;
        }
        let mut entry = zip.by_name(name).map_err(|e| CorpusError::Archive {
            path: archive.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut w = AtomicFile::create(&out).map_err(|e| CorpusError::io(&out, e))?;
        std::io::copy(&mut entry, &mut w).map_err(|e| CorpusError::io(&out, e))?;
        w.commit().map_err(|e| CorpusError::io(&out, e))?;
    }
    Ok(names)
}
