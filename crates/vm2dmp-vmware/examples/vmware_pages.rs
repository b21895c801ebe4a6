//! Writes what the VMware reader sees of a checkpoint, for comparison with another reader:
//! `<out>.raw` holds every RAM page, range after range in address order, and `<out>.json`
//! lists the ranges (`gpa`, `pages`, `offset` in the `.raw`), the holes between them
//! and the first address past the last range.
//!
//! `cargo run -p vm2dmp-vmware --example vmware_pages -- STATE [VMEM] OUT`

use std::io::Write;
use std::path::Path;

use vm2dmp_source::{MemorySource, PAGE_SIZE};
use vm2dmp_vmware::VmwareState;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (state, vmem, out) = match args.as_slice() {
        [s, o] => (s, None, o),
        [s, v, o] => (s, Some(Path::new(v)), o),
        _ => return Err("usage: vmware_pages STATE [VMEM] OUT".into()),
    };
    let s = VmwareState::open_with(state, vmem)?;
    let mut raw = std::io::BufWriter::new(std::fs::File::create(format!("{out}.raw"))?);
    let mut page = vec![0u8; PAGE_SIZE];
    let mut ranges = Vec::new();
    let mut offset = 0u64;
    for r in s.ram_ranges() {
        for p in 0..r.page_count {
            s.read_phys((r.gpa_page_start + p) << 12, &mut page)?;
            raw.write_all(&page)?;
        }
        ranges.push(format!(
            "{{\"gpa\": {}, \"pages\": {}, \"offset\": {offset}}}",
            r.gpa_start(),
            r.page_count
        ));
        offset += r.page_count * PAGE_SIZE as u64;
    }
    raw.flush()?;
    let holes: Vec<String> = s
        .ram_ranges()
        .windows(2)
        .filter(|w| w[0].gpa_end() < w[1].gpa_start())
        .map(|w| format!("[{}, {}]", w[0].gpa_end(), w[1].gpa_start()))
        .collect();
    let end = s.ram_ranges().last().map_or(0, |r| r.gpa_end());
    let json = format!(
        "{{\"ranges\": [{}], \"holes\": [{}], \"end\": {end}, \"vcpus\": {}, \"kind\": \"{}\"}}\n",
        ranges.join(", "),
        holes.join(", "),
        s.vcpus().len(),
        s.machine().kind
    );
    std::fs::write(format!("{out}.json"), json)?;
    Ok(())
}
