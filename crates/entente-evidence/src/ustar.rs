//! A strict POSIX ustar subset, written and read by Entente packages.
//!
//! Written: regular files only, names of at most 99 bytes in the `name` field (no prefix),
//! mode 0644, uid/gid 0, mtime 0, empty user and group names, sizes in octal (11 digits) or,
//! at 8 GiB and above, GNU base-256; data padded with zero bytes to 512; two zero blocks at
//! the end and nothing after. GNU tar, bsdtar and Python's `tarfile` read it.
//!
//! Read: exactly that, and nothing else. Every header field is compared with what the writer
//! would have written for the same name and size, and padding and end blocks must be zero,
//! so a change to any single byte of an archive is an error here or a changed name, size or
//! content that the package's hashes and signature catch.

use std::io::{self, Read, Write};

/// Block size.
pub const BLOCK: usize = 512;

/// Most bytes in a name.
pub const MAX_NAME: usize = 99;

/// Sizes at or above this are written in GNU base-256.
const OCTAL_LIMIT: u64 = 0o77_777_777_777 + 1;

/// Errors reading an archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarError {
    /// The archive ended early.
    #[error("truncated archive: it ends inside {0}")]
    Truncated(String),
    /// A header or padding is not what the format allows.
    #[error("corrupted archive at byte {offset}: {detail}")]
    Corrupt {
        /// Byte offset of the block.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// An I/O error.
    #[error("cannot read the archive: {0}")]
    Io(#[from] io::Error),
}

/// The header the writer makes for `name` and `size`.
///
/// # Errors
/// A name that is empty, too long or not ASCII.
pub fn header(name: &str, size: u64) -> Result<[u8; BLOCK], String> {
    if name.is_empty() || name.len() > MAX_NAME || !name.is_ascii() || name.contains('\0') {
        return Err(format!("archive member name `{name}`: expected 1 to {MAX_NAME} ASCII bytes"));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size < OCTAL_LIMIT {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[329..337].copy_from_slice(b"0000000\0");
    h[337..345].copy_from_slice(b"0000000\0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

/// Writes an archive member by member.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// A writer over `out`.
    pub fn new(out: W) -> Self {
        Writer { out }
    }

    /// Appends a member of `size` bytes read from `data`; returns what `data` yielded.
    ///
    /// # Errors
    /// A bad name, I/O errors, or `data` yielding other than `size` bytes.
    pub fn append(&mut self, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let h = header(name, size).map_err(io::Error::other)?;
        self.out.write_all(&h)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!(
                "archive member {name}: expected {size} bytes, the source gave {copied}"
            )));
        }
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }

    /// Appends a member from memory.
    ///
    /// # Errors
    /// As [`Writer::append`].
    pub fn append_bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.append(name, data.len() as u64, &mut &data[..])
    }

    /// Writes the two end blocks and returns the inner writer.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an archive member by member.
pub struct Reader<R: Read> {
    input: R,
    offset: u64,
    /// Bytes of the current member not yet read, and its padding.
    pending: Option<(u64, usize)>,
    done: bool,
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> Reader<R> {
    /// A reader over `input`.
    pub fn new(input: R) -> Self {
        Reader { input, offset: 0, pending: None, done: false }
    }

    /// The next member's name and size, or `None` after the end blocks (which must end the
    /// input). The previous member must have been read to its end with [`Reader::data`].
    ///
    /// # Errors
    /// Truncation, a header that is not the writer's, non-zero padding or trailing bytes.
    pub fn next_member(&mut self) -> Result<Option<(String, u64)>, TarError> {
        if self.done {
            return Ok(None);
        }
        if let Some((left, pad)) = self.pending.take() {
            if left > 0 {
                return Err(TarError::Corrupt {
                    offset: self.offset,
                    detail: "the previous member was not read to its end".into(),
                });
            }
            let mut p = [0u8; BLOCK];
            if read_full(&mut self.input, &mut p[..pad])? < pad {
                return Err(TarError::Truncated("the padding of a member".into()));
            }
            if p[..pad].iter().any(|&b| b != 0) {
                return Err(TarError::Corrupt {
                    offset: self.offset,
                    detail: "non-zero bytes in the padding after a member".into(),
                });
            }
            self.offset += pad as u64;
        }
        let mut h = [0u8; BLOCK];
        let n = read_full(&mut self.input, &mut h)?;
        if n < BLOCK {
            return Err(TarError::Truncated(if n == 0 {
                "the member list (no end blocks)".into()
            } else {
                "a header".into()
            }));
        }
        let at = self.offset;
        self.offset += BLOCK as u64;
        if h.iter().all(|&b| b == 0) {
            let n = read_full(&mut self.input, &mut h)?;
            if n < BLOCK {
                return Err(TarError::Truncated("the end blocks".into()));
            }
            if h.iter().any(|&b| b != 0) {
                return Err(TarError::Corrupt {
                    offset: self.offset,
                    detail: "the second end block is not zero".into(),
                });
            }
            self.offset += BLOCK as u64;
            let mut extra = [0u8; 1];
            if read_full(&mut self.input, &mut extra)? != 0 {
                return Err(TarError::Corrupt {
                    offset: self.offset,
                    detail: "bytes after the end of the archive".into(),
                });
            }
            self.done = true;
            return Ok(None);
        }
        let corrupt = |detail: String| TarError::Corrupt { offset: at, detail };
        let name_len = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&h[..name_len])
            .map_err(|_| corrupt("member name is not UTF-8".into()))?
            .to_owned();
        let size = if h[124] == 0x80 {
            if h[125..128].iter().any(|&b| b != 0) {
                return Err(corrupt("size out of range".into()));
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[128..136]);
            u64::from_be_bytes(b)
        } else {
            let field = &h[124..136];
            if field[11] != 0 || !field[..11].iter().all(|b| (b'0'..=b'7').contains(b)) {
                return Err(corrupt(format!("member `{name}`: size field is not 11 octal digits")));
            }
            let text = std::str::from_utf8(&field[..11]).unwrap_or("0");
            u64::from_str_radix(text, 8).map_err(|e| corrupt(format!("size: {e}")))?
        };
        let expected = header(&name, size)
            .map_err(|e| corrupt(format!("{e} (the format allows only plain file names)")))?;
        if h != expected {
            let field = (0..BLOCK).find(|&i| h[i] != expected[i]).unwrap_or(0);
            let what = match field {
                0..100 => "name",
                100..108 => "mode",
                108..124 => "owner",
                124..136 => "size",
                136..148 => "mtime",
                148..156 => "checksum",
                156 => "type (only regular files are allowed)",
                157..257 => "link name",
                257..265 => "magic",
                _ => "header",
            };
            return Err(corrupt(format!(
                "member `{name}`: header field {what} (byte {field}) is not as written by Entente"
            )));
        }
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.pending = Some((size, pad));
        Ok(Some((name, size)))
    }

    /// A reader of the current member's data (read it to its end before the next member).
    pub fn data(&mut self) -> MemberReader<'_, R> {
        MemberReader { inner: self }
    }
}

/// The data of one member.
pub struct MemberReader<'a, R: Read> {
    inner: &'a mut Reader<R>,
}

impl<R: Read> Read for MemberReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((left, pad)) = self.inner.pending else { return Ok(0) };
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated archive: it ends inside a member's data",
            ));
        }
        self.inner.pending = Some((left - n as u64, pad));
        self.inner.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        for (n, d) in members {
            w.append_bytes(n, d).unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, TarError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some((name, _)) = r.next_member()? {
            let mut d = Vec::new();
            r.data().read_to_end(&mut d)?;
            out.push((name, d));
        }
        Ok(out)
    }

    #[test]
    fn round_trip_and_every_byte_flip_is_seen() {
        let a = archive(&[("a.json", b"{\"x\":1}"), ("payloads/b", &[7u8; 700])]);
        let back = read_all(&a).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].1, vec![7u8; 700]);
        for i in 0..a.len() {
            let mut b = a.clone();
            b[i] ^= 0x01;
            match read_all(&b) {
                Err(_) => {}
                Ok(m) => assert_ne!(m, back, "flip at {i} went unnoticed"),
            }
        }
        for cut in [0, 100, 512, 600, a.len() - 1] {
            assert!(read_all(&a[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = a.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err());
    }

    #[test]
    fn gnu_tar_reads_it() {
        let Ok(out) = std::process::Command::new("tar").arg("--version").output() else {
            eprintln!("skipped: tar not on PATH");
            return;
        };
        assert!(out.status.success());
        let dir = tempfile::tempdir().unwrap();
        let a = archive(&[("manifest.json", b"{}"), ("payloads/x", b"hello")]);
        std::fs::write(dir.path().join("p.tar"), &a).unwrap();
        let st = std::process::Command::new("tar")
            .args(["-xf", "p.tar"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read(dir.path().join("payloads/x")).unwrap(), b"hello");
    }

    #[test]
    fn big_sizes_use_base_256() {
        let h = header("big", 9 << 30).unwrap();
        assert_eq!(h[124], 0x80);
        let mut r = Reader::new(&h[..]);
        assert_eq!(r.next_member().unwrap(), Some(("big".into(), 9 << 30)));
        assert!(header("../x", 1).is_ok(), "names are checked by the package reader");
        assert!(header(&"x".repeat(100), 1).is_err());
    }
}
