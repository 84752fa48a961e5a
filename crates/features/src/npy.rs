//! NumPy `.npy` files (format 1.0, little-endian float32, C order): a streaming
//! writer for feature dumps of any length and a reader for golden data.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sampleid_fsio::AtomicFile;

use crate::FeatureError;

/// Header size reserved by the writer, so that the shape can be rewritten in
/// place once the number of rows is known. 128 bytes fits any shape we write.
const HEADER_LEN: usize = 128;

/// Writes a float32 array row by row; the first dimension grows as rows are
/// appended and is fixed up in the header by [`NpyWriter::finish`]. The file
/// appears at its final path only when finished (written to a temporary name
/// first, fsynced, then renamed), so an interrupted run never leaves a
/// half-written `.npy`.
pub struct NpyWriter {
    out: AtomicFile,
    path: PathBuf,
    row_shape: Vec<usize>,
    row_len: usize,
    rows: usize,
}

impl NpyWriter {
    /// Starts a file whose rows have shape `row_shape` (e.g. `[64]` for mel frames).
    pub fn create(path: &Path, row_shape: &[usize]) -> Result<Self, FeatureError> {
        let io = |err| FeatureError::Io {
            path: path.to_path_buf(),
            err,
        };
        let mut out = AtomicFile::create(path).map_err(io)?;
        out.write_all(&header(0, row_shape)).map_err(io)?;
        Ok(Self {
            out,
            path: path.to_path_buf(),
            row_len: row_shape.iter().product(),
            row_shape: row_shape.to_vec(),
            rows: 0,
        })
    }

    /// Appends one row of `row_shape` values.
    pub fn write_row(&mut self, row: &[f32]) -> Result<(), FeatureError> {
        if row.len() != self.row_len {
            return Err(FeatureError::Npy(format!(
                "row of {} values does not match row shape {:?}",
                row.len(),
                self.row_shape
            )));
        }
        let mut bytes = Vec::with_capacity(row.len() * 4);
        for v in row {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&bytes).map_err(|err| FeatureError::Io {
            path: self.path.clone(),
            err,
        })?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the final shape and moves the file into place.
    pub fn finish(mut self) -> Result<Vec<usize>, FeatureError> {
        let io = |err| FeatureError::Io {
            path: self.path.clone(),
            err,
        };
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&header(self.rows, &self.row_shape)).map_err(io)?;
        self.out.commit().map_err(io)?;
        let mut shape = vec![self.rows];
        shape.extend_from_slice(&self.row_shape);
        Ok(shape)
    }

    /// Abandons the file (the temporary is removed; nothing appears).
    pub fn discard(self) {
        drop(self);
    }
}

fn header(rows: usize, row_shape: &[usize]) -> Vec<u8> {
    let mut dims = vec![rows.to_string()];
    dims.extend(row_shape.iter().map(|d| d.to_string()));
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&((HEADER_LEN - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    while h.len() < HEADER_LEN - 1 {
        h.push(b' ');
    }
    h.push(b'\n');
    h
}

/// A float32 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in C order.
    pub data: Vec<f32>,
}

/// Reads a little-endian float32 (`<f4`) or float64 (`<f8`, converted) C-order `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, FeatureError> {
    let io = |err| FeatureError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut r = BufReader::new(File::open(path).map_err(io)?);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(io)?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(FeatureError::Npy(format!("{}: not an .npy file", path.display())));
    }
    let header_len = if magic[6] == 1 {
        let mut l = [0u8; 2];
        r.read_exact(&mut l).map_err(io)?;
        u16::from_le_bytes(l) as usize
    } else {
        let mut l = [0u8; 4];
        r.read_exact(&mut l).map_err(io)?;
        u32::from_le_bytes(l) as usize
    };
    let mut h = vec![0u8; header_len];
    r.read_exact(&mut h).map_err(io)?;
    let h = String::from_utf8_lossy(&h).to_string();
    let bad = |what: &str| FeatureError::Npy(format!("{}: {what} in header {h}", path.display()));
    if h.contains("'fortran_order': True") {
        return Err(bad("Fortran order unsupported"));
    }
    let width = if h.contains("'<f4'") {
        4
    } else if h.contains("'<f8'") {
        8
    } else {
        return Err(bad("unsupported dtype"));
    };
    let shape_str = h
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let mut raw = vec![0u8; n * width];
    r.read_exact(&mut raw).map_err(io)?;
    let data = if width == 4 {
        raw.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        raw.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok(NpyArray { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_streamed_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let mut w = NpyWriter::create(&path, &[2, 3]).unwrap();
        assert!(!path.exists(), "the final name appears only when finished");
        for r in 0..5 {
            let row: Vec<f32> = (0..6).map(|i| (r * 6 + i) as f32).collect();
            w.write_row(&row).unwrap();
        }
        assert!(w.write_row(&[1.0]).is_err());
        assert_eq!(w.finish().unwrap(), vec![5, 2, 3]);
        let a = read_npy(&path).unwrap();
        assert_eq!(a.shape, vec![5, 2, 3]);
        assert_eq!(a.data, (0..30).map(|v| v as f32).collect::<Vec<_>>());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 30 * 4);
        assert_eq!(HEADER_LEN % 64, 0, "numpy wants the data 64-byte aligned");
    }

    #[test]
    fn a_discarded_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, b"old").unwrap();
        let mut w = NpyWriter::create(&path, &[2]).unwrap();
        w.write_row(&[1.0, 2.0]).unwrap();
        w.discard();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn one_dimensional_shape_has_a_trailing_comma() {
        let h = header(7, &[]);
        assert!(String::from_utf8_lossy(&h).contains("'shape': (7,)"));
    }
}
