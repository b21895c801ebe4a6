//! Writes the synthetic VMware checkpoints the outside-reader check runs on, into DIR:
//!
//! * `current.vmss` + `.vmem`: magic 0xbed2bed2, 2 MiB at 0 and 300 pages at 4 GiB, 4 vCPUs;
//! * `v0.vmss` + `.vmem`: the same with magic 0xbed2bed0 (32-bit long-data sizes),
//!   register blocks and a long-data tag among the memory group's region tags;
//! * `long.vmss` + `.vmem`: magic 0xbed2bed2 with a long-data tag among the region tags;
//! * `restored.vmsn` + `.vmem`: magic 0xbad1bad1, three regions (the last one stored before
//!   the second in the `.vmem`);
//! * `plain.vmss` + `.vmem`: no region tags (the whole `.vmem` at address 0);
//! * `esx.vmss`: the memory inside the state file, no `.vmem`;
//! * `old.vmss`, `norestore.vmss` + `.vmem`: magics 0xbed0bed0 and 0xbad2bad2 (crash's
//!   old and no-restore checkpoints).
//!
//! `cargo run -p vm2dmp-vmware --example vmware_synth -- DIR`

use std::path::Path;

use vm2dmp_synth::vmware::{Guest, MemoryPlacement, RegStyle, Region, Tag, MAGIC_V0};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let write = |g: &Guest, stem: &str, ext: &str| -> std::io::Result<()> {
        let vmem = dir.join(format!("{stem}.vmem"));
        g.write(&dir.join(format!("{stem}.{ext}")), Some(&vmem))?;
        Ok(())
    };
    write(&Guest::small(4), "current", "vmss")?;

    // A long-data tag before the region tags: readers must step over it with the right
    // size-field width.
    let with_long = |g: &Guest, stem: &str| -> std::io::Result<()> {
        let mut cp = g.checkpoint();
        let note = Tag::long("vm2dmpNote", &[], b"synthetic long data\0".to_vec(), 0);
        cp.groups[1].tags.insert(1, note);
        std::fs::write(dir.join(format!("{stem}.vmss")), cp.to_bytes().0)?;
        std::fs::write(dir.join(format!("{stem}.vmem")), g.backing())
    };
    let mut g = Guest::small(2);
    g.magic = MAGIC_V0;
    g.reg_style = RegStyle::Blocks;
    with_long(&g, "v0")?;
    with_long(&Guest::small(2), "long")?;

    let mut g = Guest::small(2);
    g.magic = 0xbad1_bad1;
    g.regions = vec![
        Region {
            gpa_page: 0,
            vmem_page: 0,
            pages: 160,
        },
        Region {
            gpa_page: 0x100,
            vmem_page: 300,
            pages: 200,
        },
        Region {
            gpa_page: 0x10_0000,
            vmem_page: 160,
            pages: 140,
        },
    ];
    write(&g, "restored", "vmsn")?;

    let mut g = Guest::small(1);
    g.regions.clear();
    g.plain_pages = 600;
    write(&g, "plain", "vmss")?;

    let mut g = Guest::small(2);
    g.placement = MemoryPlacement::InState;
    g.write(&dir.join("esx.vmss"), None)?;

    for (magic, stem) in [(0xbed0_bed0, "old"), (0xbad2_bad2, "norestore")] {
        let mut g = Guest::small(1);
        g.magic = magic;
        write(&g, stem, "vmss")?;
    }
    Ok(())
}
