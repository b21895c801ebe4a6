//! Pieces shared by the CLI tests: the command, the real sample, folder-tree GUIDs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The `vm2dmp` binary under test, without colours.
pub fn vm2dmp() -> Command {
    let mut c = Command::cargo_bin("vm2dmp").unwrap();
    c.env("NO_COLOR", "1");
    c
}

/// A file of the bundled real sample.
pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}

pub fn mkdir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    p.to_path_buf()
}

/// GUIDs of the VMs, checkpoints and snapshots in the test folder trees.
pub const VM_A: &str = "5A7C3D10-0000-4000-8000-00000000000A";
pub const CP_1: &str = "C1000000-0000-4000-8000-000000000001";
pub const CP_2: &str = "C2000000-0000-4000-8000-000000000002";
pub const CP_3: &str = "C3000000-0000-4000-8000-000000000003";
pub const CP_PROD: &str = "D0000000-0000-4000-8000-00000000000D";
pub const VM_B: &str = "5B000000-0000-4000-8000-00000000000B";
pub const SN_1: &str = "E1000000-0000-4000-8000-000000000001";
pub const SN_2: &str = "E2000000-0000-4000-8000-000000000002";
pub const SN_3: &str = "E3000000-0000-4000-8000-000000000003";
