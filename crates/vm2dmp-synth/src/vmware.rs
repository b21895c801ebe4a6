//! Writes synthetic VMware checkpoints (`.vmss` / `.vmsn`) and their `.vmem`, for tests of
//! the vm2dmp VMware reader.
//!
//! The layout follows the public descriptions the reader cites (crash `vmware_vmss.[ch]`,
//! volatility3 `layers/vmware.py`): a 12-byte header, a table of 80-byte group entries,
//! then each group's tags ending with two zero bytes. [`Checkpoint`] is the file in terms of
//! groups and tags (any tag can be added, left out or broken); [`Guest`] builds the usual
//! `memory` and `cpu` groups from regions and vCPUs and writes the memory either to a
//! `.vmem` or into the state file as the `Memory` tag's data.

use std::io;
use std::path::Path;

/// Size of a guest page.
pub const PAGE: usize = 4096;

/// The current magic (crash `CPTDUMP_MAGIC_NUMBER`): 64-bit long-data sizes.
pub const MAGIC: u32 = 0xbed2_bed2;
/// A magic whose low nibble is 0 (accepted by volatility3): 32-bit long-data sizes.
pub const MAGIC_V0: u32 = 0xbed2_bed0;

/// A tag's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagData {
    /// A value of at most 61 bytes, stored after the indices.
    Short(Vec<u8>),
    /// Long data: sizes, `pad` bytes of padding, then the bytes (size field 63, or 62 when
    /// `compressed`).
    Long {
        /// The data.
        data: Vec<u8>,
        /// Padding bytes before the data.
        pad: u16,
        /// Mark the data compressed (size field 62).
        compressed: bool,
    },
}

/// One tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Name (at most 255 bytes).
    pub name: String,
    /// Indices (at most 3).
    pub indices: Vec<u32>,
    /// Data.
    pub data: TagData,
}

impl Tag {
    /// A short tag holding `value` in `size` little-endian bytes.
    pub fn num(name: &str, indices: &[u32], value: u64, size: usize) -> Self {
        Self {
            name: name.into(),
            indices: indices.to_vec(),
            data: TagData::Short(value.to_le_bytes()[..size.min(8)].to_vec()),
        }
    }

    /// A long-data tag.
    pub fn long(name: &str, indices: &[u32], data: Vec<u8>, pad: u16) -> Self {
        Self {
            name: name.into(),
            indices: indices.to_vec(),
            data: TagData::Long {
                data,
                pad,
                compressed: false,
            },
        }
    }
}

/// One group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name (at most 63 bytes).
    pub name: String,
    /// Tags, in file order.
    pub tags: Vec<Tag>,
}

/// A checkpoint file: magic and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Magic value.
    pub magic: u32,
    /// Groups, in table order.
    pub groups: Vec<Group>,
}

/// Where one tag went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLoc {
    /// Group name.
    pub group: String,
    /// Tag name.
    pub name: String,
    /// Indices.
    pub indices: Vec<u32>,
    /// Offset of the flags byte.
    pub offset: u64,
    /// Offset of the data.
    pub data_offset: u64,
    /// Length of the data.
    pub data_len: u64,
}

/// Where everything went in a written checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointLayout {
    /// Offset of the group table (always 12).
    pub group_table: u64,
    /// Offset of each group's entry in the table, by group order.
    pub group_entries: Vec<u64>,
    /// Offset of each group's first tag, by group order.
    pub group_tags: Vec<u64>,
    /// Every tag.
    pub tags: Vec<TagLoc>,
    /// Length of the file.
    pub len: u64,
}

impl CheckpointLayout {
    /// The first tag of `group` named `name` with `indices`.
    ///
    /// # Panics
    /// When there is none.
    pub fn tag(&self, group: &str, name: &str, indices: &[u32]) -> &TagLoc {
        self.tags
            .iter()
            .find(|t| t.group == group && t.name == name && t.indices == indices)
            .unwrap_or_else(|| panic!("no tag {group}/{name}{indices:?}"))
    }
}

impl Checkpoint {
    /// The file's bytes and layout. Long-data sizes are 32-bit when the magic's low nibble
    /// is 0, else 64-bit.
    ///
    /// # Panics
    /// On a name or index list longer than the format holds, or a short value over 61 bytes.
    pub fn to_bytes(&self) -> (Vec<u8>, CheckpointLayout) {
        let wide = self.magic & 0xF != 0;
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        let table = out.len();
        out.resize(table + self.groups.len() * 80, 0);
        let mut layout = CheckpointLayout {
            group_table: table as u64,
            ..CheckpointLayout::default()
        };
        for (gi, g) in self.groups.iter().enumerate() {
            let entry = table + gi * 80;
            let start = out.len();
            assert!(g.name.len() < 64, "group name too long");
            for t in &g.tags {
                let offset = out.len() as u64;
                assert!(t.name.len() <= 255 && t.indices.len() <= 3);
                let (size, body): (u8, &[u8]) = match &t.data {
                    TagData::Short(v) => {
                        assert!(v.len() <= 61, "short value over 61 bytes");
                        (v.len() as u8, v)
                    }
                    TagData::Long {
                        data, compressed, ..
                    } => (if *compressed { 62 } else { 63 }, data),
                };
                out.push(size | ((t.indices.len() as u8) << 6));
                out.push(t.name.len() as u8);
                out.extend_from_slice(t.name.as_bytes());
                for i in &t.indices {
                    out.extend_from_slice(&i.to_le_bytes());
                }
                if let TagData::Long { data, pad, .. } = &t.data {
                    for _ in 0..2 {
                        if wide {
                            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
                        } else {
                            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                        }
                    }
                    out.extend_from_slice(&pad.to_le_bytes());
                    out.resize(out.len() + usize::from(*pad), 0);
                }
                let data_offset = out.len() as u64;
                out.extend_from_slice(body);
                layout.tags.push(TagLoc {
                    group: g.name.clone(),
                    name: t.name.clone(),
                    indices: t.indices.clone(),
                    offset,
                    data_offset,
                    data_len: body.len() as u64,
                });
            }
            out.extend_from_slice(&[0, 0]);
            let size = (out.len() - start) as u64;
            out[entry..entry + g.name.len()].copy_from_slice(g.name.as_bytes());
            out[entry + 64..entry + 72].copy_from_slice(&(start as u64).to_le_bytes());
            out[entry + 72..entry + 80].copy_from_slice(&size.to_le_bytes());
            layout.group_entries.push(entry as u64);
            layout.group_tags.push(start as u64);
        }
        layout.len = out.len() as u64;
        (out, layout)
    }
}

/// One memory region: `pages` guest pages from `gpa_page`, stored from page `vmem_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First guest page (`regionPPN`).
    pub gpa_page: u64,
    /// First page in the memory backing (`regionPageNum`).
    pub vmem_page: u64,
    /// Pages (`regionSize`).
    pub pages: u64,
}

/// How a vCPU's registers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegStyle {
    /// One tag per register: `rax`..`r15`, `rip`, `eflags`, `CR64[cpu][n]`,
    /// `DR64[cpu][n]`, `GDTR`/`IDTR[cpu][0..3]`, `S[cpu][seg]`, `S.base64[cpu][seg]`.
    Tags,
    /// Long-data blocks where crash reads them: `gpregs[cpu]` (crash's order), `CR64[cpu]`,
    /// `IDTR[cpu]`; the rest as tags.
    Blocks,
}

/// Registers of one vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vcpu {
    /// rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15 (hardware order).
    pub gp: [u64; 16],
    /// RIP.
    pub rip: u64,
    /// RFLAGS (written as 32-bit `eflags`).
    pub rflags: u32,
    /// CR0..CR8.
    pub cr: [u64; 9],
    /// DR0..DR7.
    pub dr: [u64; 8],
    /// GDTR limit and base.
    pub gdtr: (u16, u64),
    /// IDTR limit and base.
    pub idtr: (u16, u64),
    /// Selectors of ES, CS, SS, DS, FS, GS, LDTR, TR.
    pub selectors: [u16; 8],
    /// Bases of the same segments.
    pub bases: [u64; 8],
}

impl Vcpu {
    /// A Windows-like x64 vCPU in long mode, registers distinct per `index`.
    pub fn x64_long_mode(index: u32) -> Self {
        let i = u64::from(index);
        let mut gp = [0u64; 16];
        for (n, r) in gp.iter_mut().enumerate() {
            *r = 0x1111_0000_0000_0000 * (i + 1) + (n as u64) * 0x100 + i;
        }
        gp[4] = 0xFFFF_F800_0010_0000 + i * 0x1_0000; // rsp
        Self {
            gp,
            rip: 0xFFFF_F800_0000_1000 + i * 0x10,
            rflags: 0x0000_0246,
            cr: [
                0x8005_0033,
                0,
                0xFFFF_F880_0000_0000 + i,
                0x001A_A000,
                0x0000_06F8,
                0,
                0,
                0,
                i,
            ],
            dr: [i, 0, 0, 0, 0, 0, 0xFFFF_0FF0, 0x400],
            gdtr: (0x7F, 0xFFFF_F800_0300_0000 + i * 0x1000),
            idtr: (0xFFF, 0xFFFF_F800_0300_0080 + i * 0x1000),
            selectors: [0x2B, 0x10, 0x18, 0x2B, 0x53, 0x2B, 0, 0x40],
            bases: [
                0,
                0,
                0,
                0,
                0x7FF_0000 + i,
                0xFFFF_F800_0400_0000 + i * 0x1000,
                0,
                0xFFFF_F800_0500_0000 + i * 0x1000,
            ],
        }
    }

    /// The tags of vCPU `index` in `style`.
    pub fn tags(&self, index: u32, style: RegStyle) -> Vec<Tag> {
        const NAMES: [&str; 16] = [
            "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15",
        ];
        let c = index;
        let mut t = Vec::new();
        t.push(Tag::num("eflags", &[c], u64::from(self.rflags), 4));
        t.push(Tag::num("rip", &[c], self.rip, 8));
        t.push(Tag::num("eip", &[c], self.rip & 0xFFFF_FFFF, 4));
        match style {
            RegStyle::Tags => {
                for (n, name) in NAMES.iter().enumerate() {
                    t.push(Tag::num(name, &[c], self.gp[n], 8));
                }
                for n in [0u32, 2, 3, 4, 8] {
                    t.push(Tag::num(
                        "CR",
                        &[c, n],
                        self.cr[n as usize] & 0xFFFF_FFFF,
                        4,
                    ));
                    t.push(Tag::num("CR64", &[c, n], self.cr[n as usize], 8));
                }
                for (name, (limit, base)) in [("GDTR", self.gdtr), ("IDTR", self.idtr)] {
                    t.push(Tag::num(name, &[c, 0], u64::from(limit), 2));
                    t.push(Tag::num(name, &[c, 1], base & 0xFFFF_FFFF, 4));
                    t.push(Tag::num(name, &[c, 2], base >> 32, 4));
                }
            }
            RegStyle::Blocks => {
                // crash's vmssregs64 order: rbp before rsp.
                let order = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
                let gp: Vec<u8> = order
                    .iter()
                    .flat_map(|&n| self.gp[n].to_le_bytes())
                    .collect();
                t.push(Tag::long("gpregs", &[c], gp, 0));
                let cr: Vec<u8> = self.cr.iter().flat_map(|v| v.to_le_bytes()).collect();
                t.push(Tag::long("CR64", &[c], cr, 0));
                let mut idtr = self.idtr.0.to_le_bytes().to_vec();
                idtr.extend_from_slice(&self.idtr.1.to_le_bytes());
                t.push(Tag::long("IDTR", &[c], idtr, 3));
                t.push(Tag::num("GDTR", &[c, 0], u64::from(self.gdtr.0), 2));
                t.push(Tag::num("GDTR", &[c, 1], self.gdtr.1 & 0xFFFF_FFFF, 4));
                t.push(Tag::num("GDTR", &[c, 2], self.gdtr.1 >> 32, 4));
            }
        }
        for n in 0..8u32 {
            t.push(Tag::num("DR64", &[c, n], self.dr[n as usize], 8));
        }
        for s in 0..8u32 {
            t.push(Tag::num(
                "S",
                &[c, s],
                u64::from(self.selectors[s as usize]),
                2,
            ));
            t.push(Tag::num("S.base64", &[c, s], self.bases[s as usize], 8));
        }
        t.push(Tag::num("halted", &[c], 0, 1));
        t
    }
}

/// The bytes of guest page `gpa_page` in every synthetic guest: the page number in its
/// first 8 bytes, then a pattern that differs per page.
pub fn page_bytes(gpa_page: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    p[..8].copy_from_slice(&gpa_page.to_le_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(8) {
        *b = (gpa_page as u8)
            .wrapping_mul(31)
            .wrapping_add((i as u8).wrapping_mul(7))
            ^ (gpa_page >> 8) as u8;
    }
    p
}

/// Where a [`Guest`]'s memory is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryPlacement {
    /// A `.vmem` file beside the state.
    Vmem,
    /// The state file's `Memory[0][0]` long data, padded so it starts on a page boundary.
    InState,
}

/// A guest: regions, vCPUs and the options that shape the files.
#[derive(Debug, Clone)]
pub struct Guest {
    /// Magic value.
    pub magic: u32,
    /// Memory regions (written in this order); empty: no region tags, the backing is RAM
    /// from address 0 (`plain_pages` pages of it).
    pub regions: Vec<Region>,
    /// Pages of backing when `regions` is empty.
    pub plain_pages: u64,
    /// vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// How registers are written.
    pub reg_style: RegStyle,
    /// Where memory goes.
    pub placement: MemoryPlacement,
}

impl Guest {
    /// Two regions as VMware lays out a guest with more than 3 GiB, scaled down: 2 MiB at
    /// 0 and 300 pages at 4 GiB right after it in the `.vmem` (the hole below 4 GiB is not
    /// stored), and `vcpus` x64 vCPUs.
    pub fn small(vcpus: u32) -> Self {
        Self {
            magic: MAGIC,
            regions: vec![
                Region {
                    gpa_page: 0,
                    vmem_page: 0,
                    pages: 512,
                },
                Region {
                    gpa_page: 0x10_0000,
                    vmem_page: 512,
                    pages: 300,
                },
            ],
            plain_pages: 0,
            vcpus: (0..vcpus).map(Vcpu::x64_long_mode).collect(),
            reg_style: RegStyle::Tags,
            placement: MemoryPlacement::Vmem,
        }
    }

    /// Pages of memory backing.
    pub fn backing_pages(&self) -> u64 {
        if self.regions.is_empty() {
            self.plain_pages
        } else {
            self.regions
                .iter()
                .map(|r| r.vmem_page + r.pages)
                .max()
                .unwrap_or(0)
        }
    }

    /// The memory backing: each region's guest pages at its backing pages; pages of no
    /// region hold 0xEE.
    pub fn backing(&self) -> Vec<u8> {
        let pages = self.backing_pages() as usize;
        let mut v = vec![0xEEu8; pages * PAGE];
        let regions = if self.regions.is_empty() {
            vec![Region {
                gpa_page: 0,
                vmem_page: 0,
                pages: self.plain_pages,
            }]
        } else {
            self.regions.clone()
        };
        for r in regions {
            for p in 0..r.pages {
                let at = ((r.vmem_page + p) as usize) * PAGE;
                v[at..at + PAGE].copy_from_slice(&page_bytes(r.gpa_page + p));
            }
        }
        v
    }

    /// The checkpoint: groups `Checkpoint` (a few values), `memory` and `cpu`, and
    /// `Snapshot` (a long config string) so that readers skip groups they do not use.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut mem = vec![Tag::num("align_mask", &[], 0xFFFF, 4)];
        if !self.regions.is_empty() {
            mem.push(Tag::num("regionsCount", &[], self.regions.len() as u64, 4));
            for (i, r) in self.regions.iter().enumerate() {
                let i = i as u32;
                mem.push(Tag::num("regionPPN", &[i], r.gpa_page, 4));
                mem.push(Tag::num("regionPageNum", &[i], r.vmem_page, 4));
                mem.push(Tag::num("regionSize", &[i], r.pages, 4));
            }
        }
        let mut cpu = vec![Tag::num("cpu:numVCPUs", &[], self.vcpus.len() as u64, 4)];
        for (i, v) in self.vcpus.iter().enumerate() {
            cpu.extend(v.tags(i as u32, self.reg_style));
        }
        let mut cp = Checkpoint {
            magic: self.magic,
            groups: vec![
                Group {
                    name: "Checkpoint".into(),
                    tags: vec![
                        Tag::num("fileversion", &[], 10, 4),
                        Tag::long("ProductName", &[], b"vm2dmp synthetic\0".to_vec(), 0),
                    ],
                },
                Group {
                    name: "memory".into(),
                    tags: mem,
                },
                Group {
                    name: "cpu".into(),
                    tags: cpu,
                },
                Group {
                    name: "Snapshot".into(),
                    tags: vec![Tag::long(
                        "cfgFile",
                        &[],
                        b"config.version = \"8\"\n".to_vec(),
                        0,
                    )],
                },
            ],
        };
        if self.placement == MemoryPlacement::InState {
            // Find where the data would start with no padding, then pad to a page boundary.
            let data = self.backing();
            let probe = |pad: u16| {
                let mut c = cp.clone();
                c.groups[1]
                    .tags
                    .push(Tag::long("Memory", &[0, 0], Vec::new(), pad));
                c.to_bytes().1.tag("memory", "Memory", &[0, 0]).data_offset
            };
            let at = probe(0);
            let pad = ((PAGE as u64 - at % PAGE as u64) % PAGE as u64) as u16;
            cp.groups[1]
                .tags
                .push(Tag::long("Memory", &[0, 0], data, pad));
        }
        cp
    }

    /// Writes the state file at `state` and, for [`MemoryPlacement::Vmem`], the `.vmem` at
    /// `vmem`; returns the state file's layout.
    pub fn write(&self, state: &Path, vmem: Option<&Path>) -> io::Result<CheckpointLayout> {
        let (bytes, layout) = self.checkpoint().to_bytes();
        std::fs::write(state, bytes)?;
        if let (MemoryPlacement::Vmem, Some(v)) = (self.placement, vmem) {
            std::fs::write(v, self.backing())?;
        }
        Ok(layout)
    }
}
