//! Durable file output: every file sampleid produces appears under its final
//! name only when it is complete and on disk.
//!
//! The protocol is the usual one: write a temporary file in the same
//! directory (so the rename cannot cross file systems), fsync it, rename it
//! over the final name (atomic on POSIX), then fsync the directory so the
//! rename itself survives a crash. A reader therefore sees either the old
//! file or the new one, never a truncated mixture, even after a power loss.
//!
//! - [`atomic_write`]: the whole file from a byte slice.
//! - [`AtomicFile`]: a buffered writer for files written piece by piece
//!   (and, through [`AtomicFile::tmp_path`], for libraries that want a path).
//! - [`card`]: the JSON "model card" stored next to a model's weights.
//!
//! Temporary files are hidden siblings named `.NAME.tmp-<pid>-<n>.EXT`: they
//! keep the final extension because some writers choose the format from it,
//! and [`is_temp`] recognises them for code that lists directories.

#![deny(missing_docs)]

pub mod card;

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically and durably: a temporary sibling is
/// written and fsynced, renamed over `path`, and the directory is fsynced
/// (best effort). On error `path` is left as it was and no temporary remains.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Whether `path` names a temporary file of [`AtomicFile`] (`.NAME.tmp-<pid>-<n>[.EXT]`).
///
/// Only a process killed mid-write leaves one behind; code that lists a
/// directory for its outputs (by extension, say) should skip these, since the
/// temporary keeps the final extension.
pub fn is_temp(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some(at) = rest.rfind(".tmp-") else {
        return false;
    };
    let tail = &rest[at + ".tmp-".len()..];
    let tail = tail.split_once('.').map_or(tail, |(t, _)| t);
    let Some((pid, n)) = tail.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    at > 0 && digits(pid) && digits(n)
}

/// Distinguishes the temporary files one process makes for the same target.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written under a temporary name, which replaces the final
/// file only on [`commit`](AtomicFile::commit).
///
/// Writes are buffered. The temporary is a hidden sibling of the final path
/// that keeps its extension (`out/plot.png` is written as
/// `out/.plot.tmp-<pid>-<n>.png`), because some writers (plotters, image)
/// pick the format from the extension. Dropping an `AtomicFile` without
/// committing it removes the temporary and leaves the final file untouched,
/// so an error anywhere (`?`) abandons the output cleanly.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    /// Whether [`AtomicFile::tmp_path`] was handed out: a library may then
    /// have replaced the temporary (a new inode), so it is synced by path.
    lent: Cell<bool>,
}

impl AtomicFile {
    /// Creates (exclusively) an empty temporary file beside `path`; nothing
    /// appears under `path` until [`commit`](Self::commit). The directory of
    /// `path` must exist.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let (dir, stem, ext) = split(path)?;
        let pid = std::process::id();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut name = format!(".{stem}.tmp-{pid}-{n}");
            if let Some(ext) = &ext {
                name.push('.');
                name.push_str(ext);
            }
            let tmp = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    return Ok(Self {
                        path: path.to_path_buf(),
                        tmp,
                        out: Some(BufWriter::new(file)),
                        lent: Cell::new(false),
                    });
                }
                // A leftover of an earlier process with the same pid: try the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The final path (where the file appears on commit).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file's path, for libraries that write to a path rather
    /// than to a writer (safetensors stores, plotters, usearch). They may
    /// truncate or even replace the file there; [`commit`](Self::commit)
    /// syncs whatever is at this path. Do not mix this with writing through
    /// the `AtomicFile` itself.
    pub fn tmp_path(&self) -> &Path {
        self.lent.set(true);
        &self.tmp
    }

    /// Publishes the file: flushes the buffer, fsyncs the temporary, renames
    /// it over the final path and fsyncs the directory (best effort: not
    /// every platform or file system can sync a directory). On error the
    /// temporary is removed and the final path is left as it was.
    pub fn commit(mut self) -> io::Result<()> {
        let out = self.out.take().expect("the writer is present until commit or drop");
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        if self.lent.get() {
            // A library may have put a new file at the temporary path.
            drop(file);
            sync_file_at(&self.tmp)?;
        } else {
            file.sync_all()?;
            drop(file);
        }
        std::fs::rename(&self.tmp, &self.path)?;
        // Renamed: nothing left for `drop` to clean up.
        self.tmp = PathBuf::new();
        let _ = sync_dir(parent(&self.path));
        Ok(())
    }

    fn writer(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("the writer is present until commit or drop")
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

/// Seeking flushes the buffer first (as [`BufWriter`] does), so headers can
/// be rewritten in place once the body is known (`.npy`, WAV).
impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.writer().seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            // Close without flushing: the contents are being thrown away.
            let (file, _) = out.into_parts();
            drop(file);
        }
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// The directory, stem and extension of a file path.
fn split(path: &Path) -> io::Result<(&Path, String, Option<String>)> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    };
    let name = Path::new(path.file_name().ok_or_else(invalid)?);
    let stem = name.file_stem().ok_or_else(invalid)?.to_string_lossy().into_owned();
    let ext = name.extension().map(|e| e.to_string_lossy().into_owned());
    Ok((parent(path), stem, ext))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fsyncs the file at `path`, opened anew.
fn sync_file_at(path: &Path) -> io::Result<()> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        // A read-only file can still be synced through a read-only handle on Unix.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path)?,
        Err(e) => return Err(e),
    };
    file.sync_all()
}

/// Fsyncs a directory, so that entries created or renamed in it survive a crash.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; renames are left to the file system.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn atomic_write_writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        atomic_write(&p, b"{\"x\": 1}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"x\": 1}");
        atomic_write(&p, b"[]").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"[]");
        assert_eq!(names(dir.path()), ["a.json"], "no temporary is left");
    }

    #[test]
    fn split_handles_a_bare_name_and_refuses_a_non_file() {
        let (dir, stem, ext) = split(Path::new("x.tar.gz")).unwrap();
        assert_eq!(
            (dir, stem.as_str(), ext.as_deref()),
            (Path::new("."), "x.tar", Some("gz"))
        );
        assert!(split(Path::new("/")).is_err());
    }

    #[test]
    fn commit_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        std::fs::write(&p, b"old contents").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old contents", "untouched until commit");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["out.bin"]);
    }

    #[test]
    fn a_dropped_file_leaves_no_temporary_and_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        std::fs::write(&p, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(&[7u8; 100_000]).unwrap();
            assert!(f.tmp_path().exists());
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out.bin"]);
        // Without an earlier file, nothing appears at all.
        drop(AtomicFile::create(dir.path().join("new.bin")).unwrap());
        assert_eq!(names(dir.path()), ["out.bin"]);
    }

    #[test]
    fn the_temporary_keeps_the_extension_and_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let f = AtomicFile::create(dir.path().join("plot.png")).unwrap();
        let tmp = f.tmp_path().to_path_buf();
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".plot.tmp-"), "{name}");
        assert_eq!(tmp.extension().unwrap(), "png");
        assert_eq!(tmp.parent(), Some(dir.path()));
        assert!(is_temp(&tmp));
        assert_eq!(f.path(), dir.path().join("plot.png"));
        let g = AtomicFile::create(dir.path().join("checkpoint")).unwrap();
        let name = g.tmp_path().file_name().unwrap().to_str().unwrap();
        let counter = name
            .strip_prefix(".checkpoint.tmp-")
            .unwrap()
            .split_once('-')
            .unwrap()
            .1;
        assert!(
            counter.bytes().all(|b| b.is_ascii_digit()),
            "no extension added: {name}"
        );
        assert!(is_temp(g.tmp_path()));
        assert_ne!(f.tmp_path(), g.tmp_path());
        for plain in [
            "plot.png",
            ".plot.png",
            ".tmp-1-2.png",
            ".a.tmp-x-2.png",
            "a.tmp-1-2.png",
        ] {
            assert!(!is_temp(Path::new(plain)), "{plain}");
        }
    }

    #[test]
    fn a_library_may_replace_the_temporary_before_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("weights.safetensors");
        let f = AtomicFile::create(&p).unwrap();
        // As burn's store does: build elsewhere, rename onto the given path.
        let other = dir.path().join("scratch");
        std::fs::write(&other, b"tensors").unwrap();
        std::fs::rename(&other, f.tmp_path()).unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"tensors");
        assert_eq!(names(dir.path()), ["weights.safetensors"]);
    }

    #[test]
    fn seeking_rewrites_a_header_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"HHHHbody").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"head").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"headbody");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/x.json");
        assert!(atomic_write(&p, b"x").is_err());
        assert!(AtomicFile::create(&p).is_err());
    }
}
