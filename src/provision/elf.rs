//! What an ELF program loads, read from its headers (never by running it or
//! `ldd`, which may run it): its interpreter (`PT_INTERP`), the libraries it
//! names (`DT_NEEDED`) and where it asks for them (`DT_RPATH`,
//! `DT_RUNPATH`). 64-bit little-endian files only, reads bounded. Used for
//! node's official binaries (a base's libraries) and for every ELF file a
//! staged package carries (the libraries the base lacks).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::{Error, Result};

/// The most program or section headers read.
const MAX_HEADERS: u64 = 4096;
/// The most bytes of the dynamic section or its string table read.
const MAX_TABLE: u64 = 4 << 20;

#[derive(Debug, Default, PartialEq)]
pub struct Needs {
    /// `e_machine`: 62 for x86-64, 183 for aarch64.
    pub machine: u16,
    pub interpreter: Option<String>,
    pub libraries: Vec<String>,
    /// `DT_RUNPATH`, else `DT_RPATH`: `:`-separated directories, as written
    /// (`$ORIGIN/../lib`).
    pub search_path: Option<String>,
}

/// The `e_machine` of the host's own programs.
pub fn host_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(62),
        "aarch64" => Some(183),
        _ => None,
    }
}

/// Whether the first bytes of a file say it is an ELF file.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

pub fn needs(path: &Path) -> Result<Needs> {
    let bad = |why: &str| Error::UnexpectedOutput {
        command: format!("reading the ELF headers of {}", path.display()),
        reason: why.to_string(),
    };
    let mut f = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io("reading", path, e))?
        .len();
    let mut read_at = |offset: u64, size: u64| -> Result<Vec<u8>> {
        if size > MAX_TABLE || offset.checked_add(size).is_none_or(|end| end > len) {
            return Err(bad("a table lies outside the file or is too large"));
        }
        let mut buf = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| Error::io("reading", path, e))?;
        Ok(buf)
    };
    let header = read_at(0, 64)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(bad("not a 64-bit little-endian ELF file"));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let (phoff, phentsize, phnum) = (
        u64_at(&header, 32),
        u16_at(&header, 54),
        u16_at(&header, 56),
    );
    if phentsize < 56 || phnum > MAX_HEADERS {
        return Err(bad("its program headers are malformed"));
    }
    let phs = read_at(phoff, phentsize * phnum)?;
    let mut out = Needs {
        machine: u16_at(&header, 18) as u16,
        ..Needs::default()
    };
    let mut dynamic = None;
    let mut loads = Vec::new();
    for i in 0..phnum as usize {
        let ph = &phs[i * phentsize as usize..];
        let (kind, offset, vaddr, filesz) =
            (u32_at(ph, 0), u64_at(ph, 8), u64_at(ph, 16), u64_at(ph, 32));
        match kind {
            3 => {
                let text = read_at(offset, filesz)?;
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                out.interpreter = Some(String::from_utf8_lossy(&text[..end]).into_owned());
            }
            2 => dynamic = Some((offset, filesz)),
            1 => loads.push((vaddr, offset, filesz)),
            _ => {}
        }
    }
    let Some((offset, size)) = dynamic else {
        return Ok(out);
    };
    let table = read_at(offset, size)?;
    let mut strtab = None;
    let mut strsz = None;
    let mut needed = Vec::new();
    let (mut rpath, mut runpath) = (None, None);
    for entry in table.chunks_exact(16) {
        let (tag, value) = (u64_at(entry, 0), u64_at(entry, 8));
        match tag {
            0 => break,
            1 => needed.push(value),
            5 => strtab = Some(value),
            10 => strsz = Some(value),
            15 => rpath = Some(value),
            29 => runpath = Some(value),
            _ => {}
        }
        if needed.len() as u64 > MAX_HEADERS {
            return Err(bad("it names more than 4096 libraries"));
        }
    }
    let (Some(addr), Some(strsz)) = (strtab, strsz) else {
        return Err(bad("its dynamic section has no string table"));
    };
    // The string table's address is a virtual one: find it in a loaded segment.
    let file_offset = loads
        .iter()
        .find(|(vaddr, _, filesz)| addr >= *vaddr && addr < vaddr + filesz)
        .map(|(vaddr, off, _)| addr - vaddr + off)
        .ok_or_else(|| bad("its string table is in no loaded segment"))?;
    // Each name is read where it is (node's string table is megabytes of
    // exported symbols), at most `max` bytes, within the table.
    let mut string_at = |at: u64, max: u64| -> Result<String> {
        if at >= strsz {
            return Err(bad("a name lies outside the string table"));
        }
        let start = file_offset.saturating_add(at);
        let rest = read_at(start, (strsz - at).min(max).min(len.saturating_sub(start)))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad(&format!("a name is longer than {} bytes", max - 1)))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    for at in needed {
        let name = string_at(at, 256)?;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(bad(&format!("it names the library `{name}`")));
        }
        out.libraries.push(name);
    }
    if let Some(at) = runpath.or(rpath) {
        out.search_path = Some(string_at(at, 4096)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_program_s_needs_are_read_from_its_headers() {
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        let needs = needs(&sh).unwrap();
        assert!(
            needs.libraries.iter().any(|l| l == "libc.so.6"),
            "{needs:?}"
        );
        assert!(
            needs
                .interpreter
                .as_deref()
                .is_some_and(|i| i.starts_with('/')),
            "{needs:?}"
        );
        let text = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(text.path(), b"#!/bin/sh\necho not elf\n").unwrap();
        assert!(super::needs(text.path()).is_err());
    }
}
