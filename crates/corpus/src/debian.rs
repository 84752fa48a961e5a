//! Debian packages: `apt-get download` (no installation) and selective
//! extraction with `dpkg-deb`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::CorpusError;

fn run(cmd: &mut Command, what: &str) -> Result<std::process::Output, CorpusError> {
    let out = cmd.output().map_err(|e| CorpusError::Tool {
        tool: what.to_string(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(CorpusError::Tool {
            tool: what.to_string(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// The package's .deb in `debs`, downloading it if it is not there yet.
pub fn download(package: &str, debs: &Path) -> Result<PathBuf, CorpusError> {
    if let Some(deb) = find_deb(package, debs) {
        return Ok(deb);
    }
    std::fs::create_dir_all(debs).map_err(|e| CorpusError::io(debs, e))?;
    run(
        Command::new("apt-get")
            .arg("download")
            .arg("-q")
            .arg(package)
            .current_dir(debs),
        &format!("apt-get download {package}"),
    )?;
    find_deb(package, debs).ok_or_else(|| CorpusError::Tool {
        tool: format!("apt-get download {package}"),
        reason: "no .deb appeared".into(),
    })
}

/// The packages `package` depends on, directly or not (recommends and
/// suggestions left out), as `apt-cache depends --recurse` lists them;
/// virtual packages (`<name>`) are skipped.
pub fn dependency_closure(package: &str) -> Result<Vec<String>, CorpusError> {
    let out = run(
        Command::new("apt-cache").args([
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            package,
        ]),
        &format!("apt-cache depends {package}"),
    )?;
    Ok(parse_closure(&String::from_utf8_lossy(&out.stdout)))
}

/// The package names of `apt-cache depends --recurse` output: its lines that
/// are not indented, without virtual packages, each once, in order.
fn parse_closure(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.starts_with('<') && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

fn find_deb(package: &str, debs: &Path) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    std::fs::read_dir(debs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
}

/// Regular files in a .deb as (path without the leading ".", size).
pub fn list(deb: &Path) -> Result<Vec<(String, u64)>, CorpusError> {
    let out = run(Command::new("dpkg-deb").arg("-c").arg(deb), "dpkg-deb -c")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(parse_listing_line)
        .collect())
}

/// One `dpkg-deb -c` line: `-rw-r--r-- root/root   12345 2020-01-01 00:00 ./usr/x y.ogg`.
/// The path is everything after the fifth field, so spaces in names survive.
fn parse_listing_line(line: &str) -> Option<(String, u64)> {
    let mut rest = line;
    let mut fields = Vec::with_capacity(5);
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let path = rest.trim_start();
    let size = fields[2].parse().ok()?;
    Some((path.trim_start_matches('.').to_string(), size))
}

/// Extracts a whole package (symbolic links included) under `dest`.
pub fn extract_all(deb: &Path, dest: &Path) -> Result<(), CorpusError> {
    std::fs::create_dir_all(dest).map_err(|e| CorpusError::io(dest, e))?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest), "dpkg-deb -x").map(|_| ())
}

/// Extracts the listed installed paths of `deb` under `dest`.
pub fn extract(deb: &Path, dest: &Path, paths: &[String]) -> Result<(), CorpusError> {
    if paths.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dest).map_err(|e| CorpusError::io(dest, e))?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| CorpusError::Tool {
            tool: "dpkg-deb".into(),
            reason: e.to_string(),
        })?;
    let list_file = dest.join(".extract-list");
    let mut f = std::fs::File::create(&list_file).map_err(|e| CorpusError::io(&list_file, e))?;
    for p in paths {
        writeln!(f, ".{p}").map_err(|e| CorpusError::io(&list_file, e))?;
    }
    drop(f);
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dest)
        .arg("-T")
        .arg(&list_file)
        .stdin(dpkg.stdout.take().expect("piped"))
        .output()
        .map_err(|e| CorpusError::Tool {
            tool: "tar".into(),
            reason: e.to_string(),
        })?;
    let _ = dpkg.wait();
    let _ = std::fs::remove_file(&list_file);
    if !tar.status.success() {
        return Err(CorpusError::Tool {
            tool: format!("tar (extracting {})", deb.display()),
            reason: String::from_utf8_lossy(&tar.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_lines_keep_spaces_in_names() {
        let l = "-rw-r--r-- root/root   5068800 2020-11-15 10:00 ./usr/share/games/singularity/music/Media Threat.ogg";
        assert_eq!(
            parse_listing_line(l),
            Some((
                "/usr/share/games/singularity/music/Media Threat.ogg".to_string(),
                5_068_800
            ))
        );
        assert_eq!(parse_listing_line("garbage"), None);
    }

    #[test]
    fn a_dependency_closure_lists_each_real_package_once() {
        let text = "xmp\n  Depends: libasound2\n  Depends: libpulse0\nlibasound2\n  Depends: libc6\n<libc-dev>\nlibpulse0\n  Depends: libc6\nlibc6\nlibpulse0\n";
        assert_eq!(parse_closure(text), ["xmp", "libasound2", "libpulse0", "libc6"]);
    }
}
