//! Append-only row files, memory-mapped for reading.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::f16;
use half::slice::HalfFloatSliceExt;
use memmap2::Mmap;

use crate::{IndexError, io};

/// A file of fixed-size rows. Rows at or beyond the committed count are
/// never read; a writer cuts them off when it opens the file.
pub(crate) struct RowFile {
    path: PathBuf,
    row_bytes: usize,
    writer: Option<File>,
    map: Option<Mmap>,
}

impl RowFile {
    pub(crate) fn open(path: &Path, row_bytes: usize, rows: u64, writer: bool) -> Result<Self, IndexError> {
        let need = rows * row_bytes as u64;
        let file = if writer {
            File::options()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)
                .map_err(io(path))?
        } else if !path.exists() && rows == 0 {
            return Ok(Self {
                path: path.to_path_buf(),
                row_bytes,
                writer: None,
                map: None,
            });
        } else {
            File::open(path).map_err(io(path))?
        };
        let len = file.metadata().map_err(io(path))?.len();
        if len < need {
            return Err(IndexError::Damaged(format!(
                "{} has {len} bytes but {rows} committed rows need {need}",
                path.display()
            )));
        }
        if writer && len > need {
            // Rows of a song whose commit never happened (a killed process).
            tracing::warn!(path = %path.display(), bytes = len - need, "dropping uncommitted rows");
            file.set_len(need).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
        }
        let mut f = Self {
            path: path.to_path_buf(),
            row_bytes,
            writer: None,
            map: None,
        };
        f.map = f.map_file(&file, rows)?;
        if writer {
            f.writer = Some(file);
        }
        Ok(f)
    }

    fn map_file(&self, file: &File, rows: u64) -> Result<Option<Mmap>, IndexError> {
        let need = rows as usize * self.row_bytes;
        if need == 0 {
            return Ok(None);
        }
        // SAFETY: the mapped range holds committed rows only; they are never
        // rewritten (the files are append-only, and a writer truncates only
        // uncommitted bytes beyond this range).
        let map = unsafe { memmap2::MmapOptions::new().len(need).map(file) }.map_err(io(&self.path))?;
        Ok(Some(map))
    }

    /// Appends `bytes` (whole rows) after row `at` and syncs them to disk.
    pub(crate) fn append(&mut self, bytes: &[u8], at: u64) -> Result<(), IndexError> {
        let path = self.path.clone();
        let file = self
            .writer
            .as_mut()
            .ok_or_else(|| IndexError::Input("row file open for reading only".into()))?;
        file.seek(SeekFrom::Start(at * self.row_bytes as u64))
            .map_err(io(&path))?;
        file.write_all(bytes).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))
    }

    /// Maps `rows` committed rows (after an append).
    pub(crate) fn remap(&mut self, rows: u64) -> Result<(), IndexError> {
        let file = self.writer.as_ref().expect("remap is for writers");
        self.map = self.map_file(file, rows)?;
        Ok(())
    }

    /// `n` committed rows from `first`, as one slice.
    pub(crate) fn rows(&self, first: u64, n: u64) -> &[u8] {
        if n == 0 {
            return &[];
        }
        let map = self.map.as_ref().expect("committed rows exist");
        let at = first as usize * self.row_bytes;
        &map[at..at + n as usize * self.row_bytes]
    }

    /// Row `r` (committed).
    pub(crate) fn row(&self, r: u64) -> &[u8] {
        let map = self.map.as_ref().expect("a committed row exists");
        let at = r as usize * self.row_bytes;
        &map[at..at + self.row_bytes]
    }
}

/// Little-endian f16 bytes of `x`.
pub(crate) fn f32_to_f16(x: &[f32]) -> Vec<u8> {
    let mut h = vec![f16::ZERO; x.len()];
    h.convert_from_f32_slice(x);
    h.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Inverse of [`f32_to_f16`].
pub(crate) fn f16_to_f32(bytes: &[u8]) -> Vec<f32> {
    let h: Vec<f16> = bytes
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut out = vec![0.0; h.len()];
    h.convert_to_f32_slice(&mut out);
    out
}
