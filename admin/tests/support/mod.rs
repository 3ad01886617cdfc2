//! Archives for upload tests, shared by the unit tests of `src/upload/archive.rs` and the
//! API tests in `tests/upload.rs`: raw tar entries written byte by byte (no `tar` crate
//! checks, so bad entries can be made), gzip, and a gzip bomb made in a moment.

#![allow(dead_code)]

use std::io::Write;

use tar::EntryType;

/// One raw tar entry: path bytes written as they are (no `tar` crate checks), type, mode,
/// content and link target.
#[derive(Debug, Clone)]
pub struct Raw {
    pub path: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
    pub long_name: bool,
}

pub fn raw(path: &str, kind: u8, data: &[u8]) -> Raw {
    Raw {
        path: path.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        data: data.to_vec(),
        link: Vec::new(),
        long_name: false,
    }
}

pub fn tar_of(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if e.long_name {
            let mut name = e.path.clone();
            name.push(0);
            out.extend(header(
                b"././@LongLink",
                b'L',
                0o644,
                name.len() as u64,
                b"",
            ));
            out.extend(padded(&name));
        }
        out.extend(header(
            &e.path,
            e.kind,
            e.mode,
            e.data.len() as u64,
            &e.link,
        ));
        out.extend(padded(&e.data));
    }
    out.extend([0u8; 1024]);
    out
}

pub fn header(path: &[u8], kind: u8, mode: u32, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    let old = h.as_old_mut();
    let n = path.len().min(old.name.len());
    old.name[..n].copy_from_slice(&path[..n]);
    let n = link.len().min(old.linkname.len());
    old.linkname[..n].copy_from_slice(&link[..n]);
    h.set_mode(mode);
    h.set_size(size);
    h.set_entry_type(EntryType::new(kind));
    h.set_cksum();
    h.as_bytes().to_vec()
}

pub fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A gzip stream of `prefix` and then `zeros` zero bytes, made in a moment: one fully
/// flushed deflate block of 1 MiB of zeros, repeated. The trailer's CRC is not computed;
/// a checker that reaches it has already read far too much.
pub fn gzip_bomb(prefix: &[u8], mib_of_zeros: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    fn deflate(c: &mut Compress, input: &[u8], flush: FlushCompress) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 1024);
        let start = c.total_in();
        loop {
            let done = (c.total_in() - start) as usize;
            c.compress_vec(&input[done..], &mut out, flush).unwrap();
            if (c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(64 * 1024);
        }
    }
    let mut c = Compress::new(Compression::best(), false);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(deflate(&mut c, prefix, FlushCompress::Full));
    let block = deflate(&mut c, &vec![0u8; 1 << 20], FlushCompress::Full);
    for _ in 0..mib_of_zeros {
        out.extend(&block);
    }
    out.extend(deflate(&mut c, &[], FlushCompress::Finish));
    let size = (prefix.len() + (mib_of_zeros << 20)) as u32;
    out.extend(0u32.to_le_bytes());
    out.extend(size.to_le_bytes());
    out
}
