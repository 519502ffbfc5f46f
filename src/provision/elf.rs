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

/// Read what the ELF file at `path` loads from its headers.
pub fn needs(path: &Path) -> Result<Needs> {
    let mut elf = Elf::open(path)?;
    let header = elf.read_at(0, 64)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(elf.bad("not a 64-bit little-endian ELF file"));
    }
    let segments = elf.segments(&header)?;
    let mut out = Needs {
        machine: u16_at(&header, 18) as u16,
        interpreter: segments.interpreter,
        ..Needs::default()
    };
    let Some((offset, size)) = segments.dynamic else {
        return Ok(out);
    };
    let table = elf.read_at(offset, size)?;
    let dynamic = elf.dynamic(&table)?;
    // The string table's address is a virtual one: find it in a loaded segment.
    let addr = dynamic.strtab;
    let strings = segments
        .loads
        .iter()
        .find(|(vaddr, _, filesz)| addr >= *vaddr && addr < vaddr + filesz)
        .map(|(vaddr, off, _)| addr - vaddr + off)
        .ok_or_else(|| elf.bad("its string table is in no loaded segment"))?;
    for at in dynamic.needed {
        let name = elf.string_at(strings, dynamic.strsz, at, 256)?;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(elf.bad(&format!("it names the library `{name}`")));
        }
        out.libraries.push(name);
    }
    if let Some(at) = dynamic.search_path {
        out.search_path = Some(elf.string_at(strings, dynamic.strsz, at, 4096)?);
    }
    Ok(out)
}

fn u16_at(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

/// An ELF file open for reads bounded by its length and [`MAX_TABLE`].
struct Elf<'a> {
    path: &'a Path,
    file: File,
    len: u64,
}

/// What the program headers say.
struct Segments {
    /// `PT_INTERP`'s text.
    interpreter: Option<String>,
    /// `PT_DYNAMIC`: its offset and size in the file.
    dynamic: Option<(u64, u64)>,
    /// Each `PT_LOAD`: its virtual address, offset and size in the file.
    loads: Vec<(u64, u64, u64)>,
}

/// What the dynamic section says.
struct Dynamic {
    /// Each `DT_NEEDED`: an offset in the string table.
    needed: Vec<u64>,
    /// `DT_STRTAB`'s virtual address and `DT_STRSZ`.
    strtab: u64,
    strsz: u64,
    /// `DT_RUNPATH`, else `DT_RPATH`: an offset in the string table.
    search_path: Option<u64>,
}

impl<'a> Elf<'a> {
    fn open(path: &'a Path) -> Result<Elf<'a>> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading", path, e))?
            .len();
        Ok(Elf { path, file, len })
    }

    /// The file is not what it should be, and why.
    fn bad(&self, why: &str) -> Error {
        Error::UnexpectedOutput {
            command: format!("reading the ELF headers of {}", self.path.display()),
            reason: why.to_string(),
        }
    }

    /// `size` bytes at `offset`, refused when they lie outside the file or
    /// are more than [`MAX_TABLE`].
    fn read_at(&mut self, offset: u64, size: u64) -> Result<Vec<u8>> {
        if size > MAX_TABLE || offset.checked_add(size).is_none_or(|end| end > self.len) {
            return Err(self.bad("a table lies outside the file or is too large"));
        }
        let mut buf = vec![0u8; size as usize];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| Error::io("reading", self.path, e))?;
        Ok(buf)
    }

    /// Read the program headers `header` places (at most [`MAX_HEADERS`]),
    /// and the interpreter's name.
    fn segments(&mut self, header: &[u8]) -> Result<Segments> {
        let (phoff, phentsize, phnum) =
            (u64_at(header, 32), u16_at(header, 54), u16_at(header, 56));
        if phentsize < 56 || phnum > MAX_HEADERS {
            return Err(self.bad("its program headers are malformed"));
        }
        let phs = self.read_at(phoff, phentsize * phnum)?;
        let mut out = Segments {
            interpreter: None,
            dynamic: None,
            loads: Vec::new(),
        };
        for i in 0..phnum as usize {
            let ph = &phs[i * phentsize as usize..];
            let (kind, offset, vaddr, filesz) =
                (u32_at(ph, 0), u64_at(ph, 8), u64_at(ph, 16), u64_at(ph, 32));
            match kind {
                3 => {
                    let text = self.read_at(offset, filesz)?;
                    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                    out.interpreter = Some(String::from_utf8_lossy(&text[..end]).into_owned());
                }
                2 => out.dynamic = Some((offset, filesz)),
                1 => out.loads.push((vaddr, offset, filesz)),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Read the dynamic section's entries (`table`) up to `DT_NULL`: the
    /// libraries named (at most [`MAX_HEADERS`]), the string table and the
    /// search path.
    fn dynamic(&self, table: &[u8]) -> Result<Dynamic> {
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
                return Err(self.bad("it names more than 4096 libraries"));
            }
        }
        let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
            return Err(self.bad("its dynamic section has no string table"));
        };
        Ok(Dynamic {
            needed,
            strtab,
            strsz,
            search_path: runpath.or(rpath),
        })
    }

    /// The name at `at` in the string table of `strsz` bytes at file offset
    /// `strings`. Each name is read where it is (node's string table is
    /// megabytes of exported symbols), at most `max` bytes, within the table.
    fn string_at(&mut self, strings: u64, strsz: u64, at: u64, max: u64) -> Result<String> {
        if at >= strsz {
            return Err(self.bad("a name lies outside the string table"));
        }
        let start = strings.saturating_add(at);
        let rest = self.read_at(
            start,
            (strsz - at).min(max).min(self.len.saturating_sub(start)),
        )?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.bad(&format!("a name is longer than {} bytes", max - 1)))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
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
