//! PE images in guest virtual memory: headers, sections, the export directory, the CodeView
//! record (PDB name, GUID, age) and the version resource. Every field is bounds-checked.

use vm2dmp_source::le;

use super::translate::{read_virt, translate, Dtb, PhysMem};

/// A guest address space to read from.
#[derive(Clone, Copy)]
pub(crate) struct Vm<'a> {
    pub mem: &'a dyn PhysMem,
    pub dtb: Dtb,
}

impl Vm<'_> {
    pub fn read(&self, va: u64, buf: &mut [u8]) -> bool {
        read_virt(self.mem, self.dtb, va, buf).is_ok()
    }
    pub fn mapped(&self, va: u64) -> bool {
        translate(self.mem, self.dtb, va).is_some()
    }
    pub fn u8(&self, va: u64) -> Option<u8> {
        let mut b = [0u8; 1];
        self.read(va, &mut b).then_some(b[0])
    }
    pub fn u16(&self, va: u64) -> Option<u16> {
        let mut b = [0u8; 2];
        self.read(va, &mut b).then(|| u16::from_le_bytes(b))
    }
    pub fn u32(&self, va: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(va, &mut b).then(|| u32::from_le_bytes(b))
    }
    pub fn u64(&self, va: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(va, &mut b).then(|| u64::from_le_bytes(b))
    }
    /// A pointer of the guest's size (zero-extended on x86).
    pub fn ptr(&self, va: u64) -> Option<u64> {
        if self.dtb.paging.pointer_size() == 8 {
            self.u64(va)
        } else {
            self.u32(va).map(u64::from)
        }
    }
    pub fn ptr_size(&self) -> u64 {
        self.dtb.paging.pointer_size() as u64
    }
    /// A NUL-terminated ASCII string of at most `max` bytes.
    pub fn cstr(&self, va: u64, max: usize) -> Option<String> {
        let mut out = Vec::new();
        let mut at = va;
        while out.len() < max {
            let chunk = (4096 - (at & 0xFFF) as usize).min(max - out.len()).min(64);
            let mut b = vec![0u8; chunk];
            if !self.read(at, &mut b) {
                return None;
            }
            if let Some(end) = b.iter().position(|&c| c == 0) {
                out.extend_from_slice(&b[..end]);
                return Some(out.iter().map(|&c| c as char).collect());
            }
            out.extend_from_slice(&b);
            at = at.wrapping_add(chunk as u64);
        }
        None
    }
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Section {
    /// Section name, up to 8 characters (`.text`, `PAGE`...).
    pub name: String,
    /// Image-relative address of the section's first byte.
    pub rva: u32,
    /// Size in bytes in memory: the larger of the virtual and raw sizes, cut at the image's
    /// end.
    pub size: u32,
    /// `Characteristics` flags (`IMAGE_SCN_*`).
    pub characteristics: u32,
}

pub(crate) const SCN_EXECUTE: u32 = 0x2000_0000;
pub(crate) const SCN_WRITE: u32 = 0x8000_0000;

impl Section {
    /// `IMAGE_SCN_MEM_EXECUTE`: the section holds code.
    pub fn executable(&self) -> bool {
        self.characteristics & SCN_EXECUTE != 0
    }
    /// `IMAGE_SCN_MEM_WRITE`: the section is writable.
    pub fn writable(&self) -> bool {
        self.characteristics & SCN_WRITE != 0
    }
}

/// The CodeView (RSDS) record of an image: what its PDB is called and which build it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PdbId {
    /// PDB file name as the record gives it (e.g. `ntkrnlmp.pdb`).
    pub name: String,
    /// GUID in its on-disk byte order (Data1..3 little-endian).
    #[cfg_attr(feature = "serde", serde(serialize_with = "guid_ser"))]
    pub guid: [u8; 16],
    /// Age: which revision of the PDB matches the image.
    pub age: u32,
}

#[cfg(feature = "serde")]
fn guid_ser<S: serde::Serializer>(g: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&guid_string(g))
}

/// GUID as text, e.g. `3844DBB9-2017-4967-BE7A-A4A2C20430FA`.
pub fn guid_string(g: &[u8; 16]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

impl PdbId {
    /// The symbol-store key: GUID without dashes followed by the age in hex.
    pub fn store_key(&self) -> String {
        format!("{}{:X}", guid_string(&self.guid).replace('-', ""), self.age)
    }
}

/// A PE image mapped in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PeImage {
    /// Virtual address of the image (its `MZ` header).
    pub base: u64,
    /// `SizeOfImage`: bytes the image spans in memory (at most 512 MiB).
    pub size: u32,
    /// PE32+ (x64).
    pub pe64: bool,
    /// `Machine` of the file header (0x8664 x64, 0x14C x86).
    pub machine: u16,
    /// `TimeDateStamp` of the file header.
    pub timestamp: u32,
    /// Section headers, in file order.
    pub sections: Vec<Section>,
    /// Name in the export directory, e.g. `ntkrnlmp.exe`.
    pub export_name: Option<String>,
    #[cfg_attr(feature = "serde", serde(skip))]
    export_dir: (u32, u32),
    /// The CodeView (RSDS) record, when the image has one that could be read.
    pub pdb: Option<PdbId>,
    /// `VS_FIXEDFILEINFO` file version: major, minor, build, revision.
    pub file_version: Option<[u16; 4]>,
}

const MAX_SECTIONS: u16 = 96;
const MAX_IMAGE_SIZE: u32 = 512 << 20;
const MAX_EXPORT_NAMES: u32 = 1 << 16;

impl PeImage {
    /// Parses the image whose headers are at `base`; `None` unless it is a well-formed PE.
    pub(crate) fn parse(vm: &Vm<'_>, base: u64) -> Option<PeImage> {
        let mut hdr = [0u8; 0x1000];
        if !vm.read(base, &mut hdr) || &hdr[..2] != b"MZ" {
            return None;
        }
        let lfanew = le::u32(&hdr, 0x3C)? as usize;
        if !(0x40..=0xC00).contains(&lfanew) || hdr.get(lfanew..lfanew + 4)? != b"PE\0\0" {
            return None;
        }
        let fh = lfanew + 4;
        let machine = le::u16(&hdr, fh)?;
        let nsec = le::u16(&hdr, fh + 2)?;
        let timestamp = le::u32(&hdr, fh + 4)?;
        let opt_size = le::u16(&hdr, fh + 16)? as usize;
        let opt = fh + 20;
        let magic = le::u16(&hdr, opt)?;
        let pe64 = match magic {
            0x20B => true,
            0x10B => false,
            _ => return None,
        };
        let size = le::u32(&hdr, opt + 56)?;
        if size == 0 || size > MAX_IMAGE_SIZE || nsec == 0 || nsec > MAX_SECTIONS {
            return None;
        }
        let (ndirs_at, dirs_at) = if pe64 {
            (opt + 108, opt + 112)
        } else {
            (opt + 92, opt + 96)
        };
        let ndirs = le::u32(&hdr, ndirs_at)?.min(16) as usize;
        let dir = |i: usize| -> (u32, u32) {
            if i >= ndirs {
                return (0, 0);
            }
            (
                le::u32(&hdr, dirs_at + i * 8).unwrap_or(0),
                le::u32(&hdr, dirs_at + i * 8 + 4).unwrap_or(0),
            )
        };
        let sec_at = opt + opt_size;
        let mut sections = Vec::new();
        for i in 0..nsec as usize {
            let s = sec_at + i * 40;
            let raw = hdr.get(s..s + 40)?;
            let name: String = raw[..8]
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as char)
                .collect();
            let vsize = le::u32(raw, 8)?;
            let rva = le::u32(raw, 12)?;
            let raw_size = le::u32(raw, 16)?;
            sections.push(Section {
                name,
                rva,
                size: vsize.max(raw_size).min(size.saturating_sub(rva)),
                characteristics: le::u32(raw, 36)?,
            });
        }
        let mut img = PeImage {
            base,
            size,
            pe64,
            machine,
            timestamp,
            sections,
            export_name: None,
            export_dir: dir(0),
            pdb: None,
            file_version: None,
        };
        img.export_name = img.read_export_name(vm);
        img.pdb = img.read_codeview(vm, dir(6));
        img.file_version = img.read_version(vm, dir(2));
        Some(img)
    }

    fn rva_ok(&self, rva: u32, len: u32) -> bool {
        rva.checked_add(len).is_some_and(|e| e <= self.size)
    }

    /// Virtual address of image-relative address `rva`.
    pub fn va(&self, rva: u32) -> u64 {
        self.base.wrapping_add(u64::from(rva))
    }

    /// Whether `va` is inside the image.
    pub fn contains(&self, va: u64) -> bool {
        va >= self.base && va - self.base < u64::from(self.size)
    }

    /// The section holding `va`.
    pub fn section_of(&self, va: u64) -> Option<&Section> {
        if !self.contains(va) {
            return None;
        }
        let rva = (va - self.base) as u32;
        self.sections
            .iter()
            .find(|s| rva >= s.rva && rva - s.rva < s.size)
    }

    fn read_export_name(&self, vm: &Vm<'_>) -> Option<String> {
        let (rva, size) = self.export_dir;
        if rva == 0 || size < 40 || !self.rva_ok(rva, 40) {
            return None;
        }
        let name_rva = vm.u32(self.va(rva + 12))?;
        if !self.rva_ok(name_rva, 1) {
            return None;
        }
        vm.cstr(self.va(name_rva), 64)
    }

    /// Address of the export `name` (a function or a variable); forwarders are skipped.
    pub(crate) fn export(&self, vm: &Vm<'_>, name: &str) -> Option<u64> {
        let (dir, dir_size) = self.export_dir;
        if dir == 0 || !self.rva_ok(dir, 40) {
            return None;
        }
        let d = self.va(dir);
        let nfuncs = vm.u32(d.wrapping_add(20))?;
        let nnames = vm.u32(d.wrapping_add(24))?.min(MAX_EXPORT_NAMES);
        let funcs = vm.u32(d.wrapping_add(28))?;
        let names = vm.u32(d.wrapping_add(32))?;
        let ords = vm.u32(d.wrapping_add(36))?;
        if !self.rva_ok(names, nnames * 4) || !self.rva_ok(ords, nnames * 2) {
            return None;
        }
        // Names are sorted (binary search); fall back to a linear pass if the table is not.
        let name_at = |i: u32| -> Option<String> {
            let r = vm.u32(self.va(names + i * 4))?;
            if !self.rva_ok(r, 1) {
                return None;
            }
            vm.cstr(self.va(r), 256)
        };
        let (mut lo, mut hi) = (0u32, nnames);
        let mut hit = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let n = name_at(mid)?;
            match n.as_str().cmp(name) {
                std::cmp::Ordering::Equal => {
                    hit = Some(mid);
                    break;
                }
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        if hit.is_none() && nnames <= 4096 {
            hit = (0..nnames).find(|&i| name_at(i).as_deref() == Some(name));
        }
        let i = hit?;
        let ord = u32::from(vm.u16(self.va(ords + i * 2))?);
        if ord >= nfuncs || !self.rva_ok(funcs, (ord + 1) * 4) {
            return None;
        }
        let f = vm.u32(self.va(funcs + ord * 4))?;
        let forwarder = f >= dir && f - dir < dir_size;
        if f == 0 || forwarder || !self.rva_ok(f, 1) {
            return None;
        }
        Some(self.va(f))
    }

    fn read_codeview(&self, vm: &Vm<'_>, (rva, size): (u32, u32)) -> Option<PdbId> {
        if rva == 0 || !self.rva_ok(rva, size) {
            return None;
        }
        for i in 0..(size / 28).min(16) {
            let e = self.va(rva + i * 28);
            if vm.u32(e.wrapping_add(12))? != 2 {
                continue; // IMAGE_DEBUG_TYPE_CODEVIEW
            }
            let len = vm.u32(e.wrapping_add(16))?;
            let data = vm.u32(e.wrapping_add(20))?;
            if !(24..=1024).contains(&len) || !self.rva_ok(data, len) {
                continue;
            }
            let mut b = vec![0u8; len as usize];
            if !vm.read(self.va(data), &mut b) || &b[..4] != b"RSDS" {
                continue;
            }
            let guid: [u8; 16] = b[4..20].try_into().ok()?;
            let age = le::u32(&b, 20)?;
            let name: String = b[24..]
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as char)
                .collect();
            return Some(PdbId { name, guid, age });
        }
        None
    }

    /// The fixed file version of the `RT_VERSION` resource.
    fn read_version(&self, vm: &Vm<'_>, (rva, size): (u32, u32)) -> Option<[u16; 4]> {
        if rva == 0 || !self.rva_ok(rva, size.max(16)) {
            return None;
        }
        let root = rva;
        // Resource tree: type (16 = RT_VERSION) -> name -> language -> data entry.
        let find = |dir: u32, id: Option<u32>| -> Option<u32> {
            if !self.rva_ok(dir, 16) {
                return None;
            }
            let named = u32::from(vm.u16(self.va(dir + 12))?);
            let ids = u32::from(vm.u16(self.va(dir + 14))?);
            for i in 0..(named + ids).min(256) {
                let e = self.va(dir + 16 + i * 8);
                let name = vm.u32(e)?;
                let off = vm.u32(e.wrapping_add(4))?;
                if id.is_none_or(|want| name & 0x8000_0000 == 0 && name == want) {
                    return Some(off);
                }
            }
            None
        };
        let t = find(root, Some(16))?;
        let n = find(root + (t & 0x7FFF_FFFF), None)?;
        let l = find(root + (n & 0x7FFF_FFFF), None)?;
        if t & n & 0x8000_0000 == 0 || l & 0x8000_0000 != 0 {
            return None;
        }
        let data_entry = root + l;
        if !self.rva_ok(data_entry, 16) {
            return None;
        }
        let data = vm.u32(self.va(data_entry))?;
        let len = vm.u32(self.va(data_entry + 4))?.min(0x200);
        if len < 0x5C || !self.rva_ok(data, len) {
            return None;
        }
        let mut b = vec![0u8; len as usize];
        if !vm.read(self.va(data), &mut b) {
            return None;
        }
        let sig = (0..b.len().saturating_sub(16))
            .step_by(4)
            .find(|&i| le::u32(&b, i) == Some(0xFEEF_04BD))?;
        let ms = le::u32(&b, sig + 8)?;
        let ls = le::u32(&b, sig + 12)?;
        Some([(ms >> 16) as u16, ms as u16, (ls >> 16) as u16, ls as u16])
    }
}
