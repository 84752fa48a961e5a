//! Encoder priming of MP4/M4A audio, read from the edit list (`elst`).
//!
//! AAC encoders prepend warm-up samples (1024 for most encoders, 2112 for
//! Apple's) and record them in the edit list of the track. symphonia parses the
//! atom but does not apply it, so without this every timestamp of an M4A file
//! would be late by 23–48 ms compared with the same music in another format.

use std::io::{Read, Seek, SeekFrom};

/// Seconds to drop from the start of the first sound track, as its edit list
/// declares, or `None` when the input is not MP4 or declares nothing.
pub fn priming_seconds<R: Read + Seek>(r: &mut R) -> Option<f64> {
    let end = r.seek(SeekFrom::End(0)).ok()?;
    r.seek(SeekFrom::Start(0)).ok()?;
    // Only look inside inputs that start like an ISO media file.
    let first = read_header(r, end)?;
    if &first.kind != b"ftyp" {
        return None;
    }
    let moov = find_child(r, 0, end, b"moov")?;
    let mut pos = moov.body;
    while let Some(trak) = next_child(r, pos, moov.end, b"trak") {
        pos = trak.end;
        if let Some(s) = track_priming(r, &trak) {
            return Some(s);
        }
    }
    None
}

struct Atom {
    kind: [u8; 4],
    /// Offset of the first byte after the header.
    body: u64,
    /// Offset of the first byte after the atom.
    end: u64,
}

fn read_header<R: Read + Seek>(r: &mut R, limit: u64) -> Option<Atom> {
    let start = r.stream_position().ok()?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h).ok()?;
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let kind = [h[4], h[5], h[6], h[7]];
    let (size, header) = match size32 {
        0 => (limit - start, 8),
        1 => {
            let mut l = [0u8; 8];
            r.read_exact(&mut l).ok()?;
            (u64::from_be_bytes(l), 16)
        }
        s => (s, 8),
    };
    if size < header || start + size > limit {
        return None;
    }
    Some(Atom {
        kind,
        body: start + header,
        end: start + size,
    })
}

/// The first child of type `kind` in `[from, to)`.
fn find_child<R: Read + Seek>(r: &mut R, from: u64, to: u64, kind: &[u8; 4]) -> Option<Atom> {
    next_child(r, from, to, kind)
}

fn next_child<R: Read + Seek>(r: &mut R, mut pos: u64, to: u64, kind: &[u8; 4]) -> Option<Atom> {
    while pos + 8 <= to {
        r.seek(SeekFrom::Start(pos)).ok()?;
        let atom = read_header(r, to)?;
        if &atom.kind == kind {
            return Some(atom);
        }
        pos = atom.end;
    }
    None
}

fn read_bytes<R: Read + Seek, const N: usize>(r: &mut R, at: u64) -> Option<[u8; N]> {
    r.seek(SeekFrom::Start(at)).ok()?;
    let mut b = [0u8; N];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

fn track_priming<R: Read + Seek>(r: &mut R, trak: &Atom) -> Option<f64> {
    let mdia = find_child(r, trak.body, trak.end, b"mdia")?;
    let hdlr = find_child(r, mdia.body, mdia.end, b"hdlr")?;
    let handler: [u8; 4] = read_bytes(r, hdlr.body + 8)?;
    if &handler != b"soun" {
        return None;
    }
    let mdhd = find_child(r, mdia.body, mdia.end, b"mdhd")?;
    let version: [u8; 1] = read_bytes(r, mdhd.body)?;
    let ts_at = if version[0] == 1 {
        mdhd.body + 20
    } else {
        mdhd.body + 12
    };
    let timescale = u32::from_be_bytes(read_bytes(r, ts_at)?);
    if timescale == 0 {
        return None;
    }
    let edts = find_child(r, trak.body, trak.end, b"edts")?;
    let elst = find_child(r, edts.body, edts.end, b"elst")?;
    let head: [u8; 8] = read_bytes(r, elst.body)?;
    let version = head[0];
    let count = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let entry_len = if version == 1 { 20 } else { 12 };
    for i in 0..count.min(16) as u64 {
        let at = elst.body + 8 + i * entry_len;
        if at + entry_len > elst.end {
            return None;
        }
        let media_time = if version == 1 {
            let b: [u8; 8] = read_bytes(r, at + 8)?;
            i64::from_be_bytes(b)
        } else {
            let b: [u8; 4] = read_bytes(r, at + 4)?;
            i32::from_be_bytes(b) as i64
        };
        // -1 marks an empty edit (a delay before the media starts); skip it.
        if media_time >= 0 {
            return Some(media_time as f64 / timescale as f64);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn atom(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn mp4_with_elst(media_time: i32, timescale: u32) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(b"soun");
        hdlr.extend_from_slice(&[0u8; 12]);
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 8]);
        let mdia = [atom(b"mdhd", &mdhd), atom(b"hdlr", &hdlr)].concat();
        let mut elst = vec![0u8, 0, 0, 0];
        elst.extend_from_slice(&2u32.to_be_bytes());
        for mt in [-1, media_time] {
            elst.extend_from_slice(&1000u32.to_be_bytes());
            elst.extend_from_slice(&mt.to_be_bytes());
            elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        }
        let trak = [atom(b"edts", &atom(b"elst", &elst)), atom(b"mdia", &mdia)].concat();
        [atom(b"ftyp", b"M4A \0\0\0\0"), atom(b"moov", &atom(b"trak", &trak))].concat()
    }

    #[test]
    fn reads_the_first_non_empty_edit() {
        let bytes = mp4_with_elst(2112, 44_100);
        let s = priming_seconds(&mut Cursor::new(bytes)).unwrap();
        assert!((s - 2112.0 / 44_100.0).abs() < 1e-12);
    }

    #[test]
    fn ignores_other_inputs() {
        assert_eq!(priming_seconds(&mut Cursor::new(b"OggS\0\0\0\0\0\0".to_vec())), None);
        assert_eq!(priming_seconds(&mut Cursor::new(Vec::new())), None);
        // A declared size past the end of the input must not be followed.
        let mut bad = mp4_with_elst(1024, 44_100);
        bad[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(priming_seconds(&mut Cursor::new(bad)), None);
    }
}
