//! What the end of an Ogg file promises. Ogg declares no total length: a
//! stream is complete when its last page is whole (the end-of-stream flag is
//! optional in practice; trackballs-data's music lacks it and ffmpeg plays
//! it), and truncated when the file stops inside a page whose header
//! promises more bytes. [`tail`] tells the two apart, so that the decoder
//! refuses only audio the container itself says is missing.

use std::io::{Read, Seek, SeekFrom};

/// The largest Ogg page: 27 header bytes, 255 lacing values, 255 × 255 body bytes.
const MAX_PAGE: u64 = 27 + 255 + 255 * 255;

/// How an Ogg file ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tail {
    /// The file ends exactly after a whole page (whose checksum holds).
    Whole { granule: i64, end_of_stream: bool },
    /// The file ends inside a page; its header promises audio up to `granule`
    /// (stream samples) when the header itself is whole.
    Cut { granule: Option<i64> },
}

/// The Ogg page checksum: CRC-32, polynomial 0x04c11db7, initial 0, no
/// reflection, no final XOR (RFC 3533). Written here because the CRC
/// crates' catalogues lack this variant, and it runs over one page per file.
fn crc(data: &[u8]) -> u32 {
    let mut c = 0u32;
    for &b in data {
        c ^= (b as u32) << 24;
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
        }
    }
    c
}

/// The page starting at `at` of `buf`, when it is whole and its checksum
/// holds: (its length, granule position, header type).
fn page(buf: &[u8], at: usize) -> Option<(usize, i64, u8)> {
    let h = buf.get(at..at + 27)?;
    if &h[..4] != b"OggS" || h[4] != 0 {
        return None;
    }
    let segments = h[26] as usize;
    let lacing = buf.get(at + 27..at + 27 + segments)?;
    let len = 27 + segments + lacing.iter().map(|&l| l as usize).sum::<usize>();
    let whole = buf.get(at..at + len)?;
    let stored = u32::from_le_bytes(whole[22..26].try_into().ok()?);
    let mut copy = whole.to_vec();
    copy[22..26].fill(0);
    let granule = i64::from_le_bytes(h[6..14].try_into().ok()?);
    (crc(&copy) == stored).then_some((len, granule, h[5]))
}

/// How the Ogg file in `source` ends (`None`: no whole page in its last
/// 128 KiB, which is not an Ogg stream this can judge). Leaves the source
/// position anywhere: callers seek back.
pub(crate) fn tail<R: Read + Seek + ?Sized>(source: &mut R) -> Option<Tail> {
    let len = source.seek(SeekFrom::End(0)).ok()?;
    let from = len.saturating_sub(2 * MAX_PAGE);
    source.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = Vec::with_capacity((len - from) as usize);
    source.take(len - from).read_to_end(&mut buf).ok()?;
    // The first whole page in the window, then page after page to the end.
    let mut at = (0..buf.len()).find(|&i| page(&buf, i).is_some())?;
    let mut last = None;
    while let Some((n, granule, kind)) = page(&buf, at) {
        last = Some((granule, kind));
        at += n;
    }
    let (granule, kind) = last?;
    let rest = &buf[at..];
    // The file ends after the last page, or what follows is not a page (a
    // tag, padding): nothing the stream promised is missing.
    if !rest.starts_with(b"OggS") {
        return Some(Tail::Whole {
            granule,
            end_of_stream: kind & 4 != 0,
        });
    }
    let promised = rest
        .get(6..14)
        .and_then(|g| g.try_into().ok())
        .map(i64::from_le_bytes)
        .filter(|&g| g >= 0);
    Some(Tail::Cut { granule: promised })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of `body` with its checksum.
    fn make_page(kind: u8, granule: i64, body: &[u8]) -> Vec<u8> {
        let mut lacing = vec![255u8; body.len() / 255];
        lacing.push((body.len() % 255) as u8);
        let mut p = b"OggS".to_vec();
        p.push(0);
        p.push(kind);
        p.extend(granule.to_le_bytes());
        p.extend(7u32.to_le_bytes()); // serial
        p.extend(3u32.to_le_bytes()); // sequence
        p.extend([0; 4]);
        p.push(lacing.len() as u8);
        p.extend(lacing);
        p.extend(body);
        let c = crc(&p);
        p[22..26].copy_from_slice(&c.to_le_bytes());
        p
    }

    #[test]
    fn whole_cut_and_flagged_ends_are_told_apart() {
        // A body that holds a fake capture pattern: only checksummed pages count.
        let mut body = vec![0x5au8; 3000];
        body[100..104].copy_from_slice(b"OggS");
        let mut file = make_page(2, 0, &body);
        file.extend(make_page(0, 44_100, &body));
        file.extend(make_page(0, 88_200, &body));
        assert_eq!(
            tail(&mut std::io::Cursor::new(&file)),
            Some(Tail::Whole {
                granule: 88_200,
                end_of_stream: false
            })
        );
        let mut flagged = file.clone();
        flagged.extend(make_page(4, 90_000, &body[..500]));
        assert_eq!(
            tail(&mut std::io::Cursor::new(&flagged)),
            Some(Tail::Whole {
                granule: 90_000,
                end_of_stream: true
            })
        );
        let mut cut = file.clone();
        cut.extend(&make_page(0, 132_300, &body)[..1000]);
        assert_eq!(
            tail(&mut std::io::Cursor::new(&cut)),
            Some(Tail::Cut { granule: Some(132_300) })
        );
        let mut header_cut = file.clone();
        header_cut.extend(&make_page(0, 132_300, &body)[..10]);
        assert_eq!(
            tail(&mut std::io::Cursor::new(&header_cut)),
            Some(Tail::Cut { granule: None })
        );
        assert_eq!(tail(&mut std::io::Cursor::new(b"not ogg at all".to_vec())), None);
    }

    #[test]
    fn the_checksum_is_the_ogg_one() {
        // A page written by libogg (the Vorbis identification header of a
        // fixture) checks: its stored CRC is recomputed.
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/audio/nebula-20s.ogg"
        ))
        .unwrap();
        assert!(page(&bytes, 0).is_some(), "the first page of a real Ogg file");
        assert!(matches!(
            tail(&mut std::io::Cursor::new(&bytes)),
            Some(Tail::Whole {
                end_of_stream: true,
                ..
            })
        ));
    }
}
