//! A RIFF/WAVE size that undercounts its own chunks. Some writers put a RIFF
//! size a few bytes short of the chunks that follow (pingus-data's
//! `sounds/letsgo.wav`: RIFF 38,944 bytes, its `data` chunk ends 4 bytes
//! later); symphonia then refuses the file ("chunk length exceeds parent
//! chunk length") while ffmpeg plays it. [`repair`] finds such a file and
//! [`Patched`] shows the decoder the RIFF size its chunks need, without
//! copying the file.

use std::io::{Read, Seek, SeekFrom};

use symphonia::core::io::MediaSource;

/// The RIFF size the chunks of a RIFF/WAVE source need, when the declared one
/// is smaller and the chunks still end inside the file; `None` otherwise
/// (including for anything that is not RIFF/WAVE). Leaves the position anywhere.
pub(crate) fn repair<R: Read + Seek + ?Sized>(source: &mut R) -> Option<u32> {
    let len = source.seek(SeekFrom::End(0)).ok()?;
    source.seek(SeekFrom::Start(0)).ok()?;
    let mut head = [0u8; 12];
    source.read_exact(&mut head).ok()?;
    if &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let declared = u32::from_le_bytes(head[4..8].try_into().ok()?) as u64 + 8;
    if declared >= len {
        return None;
    }
    // Walk the chunks (id, size, body padded to even) as far as the file goes.
    let mut at = 12u64;
    let mut end = at;
    for _ in 0..1024 {
        if at + 8 > len {
            break;
        }
        source.seek(SeekFrom::Start(at)).ok()?;
        let mut h = [0u8; 8];
        source.read_exact(&mut h).ok()?;
        let size = u32::from_le_bytes(h[4..8].try_into().ok()?) as u64;
        let next = at + 8 + size + (size & 1);
        if at + 8 + size > len {
            break;
        }
        end = next.min(len);
        at = next;
    }
    (end > declared).then(|| u32::try_from(end - 8).ok()).flatten()
}

/// A source whose RIFF size field (bytes 4..8) reads as `size`.
pub(crate) struct Patched {
    inner: Box<dyn MediaSource>,
    size: [u8; 4],
    pos: u64,
}

impl Patched {
    pub(crate) fn new(inner: Box<dyn MediaSource>, size: u32) -> Self {
        Self {
            inner,
            size: size.to_le_bytes(),
            pos: 0,
        }
    }
}

impl Read for Patched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            if (4..8).contains(&at) {
                *b = self.size[(at - 4) as usize];
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Patched {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

impl MediaSource for Patched {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(riff_short_by: u32) -> Vec<u8> {
        let data = vec![1u8; 400];
        let mut v = b"RIFF".to_vec();
        v.extend((36 + data.len() as u32 - riff_short_by).to_le_bytes());
        v.extend(b"WAVEfmt ");
        v.extend(16u32.to_le_bytes());
        v.extend([1, 0, 1, 0]);
        v.extend(16_000u32.to_le_bytes());
        v.extend(32_000u32.to_le_bytes());
        v.extend([2, 0, 16, 0]);
        v.extend(b"data");
        v.extend((data.len() as u32).to_le_bytes());
        v.extend(data);
        v
    }

    #[test]
    fn a_short_riff_size_is_repaired_and_only_that() {
        assert_eq!(repair(&mut std::io::Cursor::new(wav(0))), None, "consistent");
        let short = wav(4);
        assert_eq!(repair(&mut std::io::Cursor::new(&short)), Some(436));
        let mut p = Patched::new(Box::new(std::io::Cursor::new(short.clone())), 436);
        let mut all = Vec::new();
        p.read_to_end(&mut all).unwrap();
        assert_eq!(&all[4..8], &436u32.to_le_bytes());
        assert_eq!(&all[8..], &short[8..]);
        // Trailing bytes that are not a whole chunk are left alone.
        let mut tail = wav(0);
        tail.extend(b"ID3\x03junk");
        assert_eq!(repair(&mut std::io::Cursor::new(&tail)), None);
        assert_eq!(repair(&mut std::io::Cursor::new(b"OggS not a wav".to_vec())), None);
    }
}
