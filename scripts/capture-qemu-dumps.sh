#!/usr/bin/env bash
# Writes real QEMU guest-memory dumps for the tests of the QEMU readers:
# boots Debian's OVMF firmware under TCG (q35, 2 vCPUs, 1.5 GiB of RAM of
# which 512 MiB above 4 GiB), stops the guest after a few seconds and has
# QEMU's own `dump-guest-memory` write the same stopped guest as an ELF core
# and as kdump-compressed files (every format this QEMU build offers).
#
# Usage: scripts/capture-qemu-dumps.sh [--wait S] OUTDIR
#
# Writes into OUTDIR:
#   ovmf.elf             dump-guest-memory FILE      (ELF core)
#   ovmf.kdump-zlib      dump-guest-memory -z FILE   (kdump-compressed, zlib)
#   ovmf.kdump-lzo       dump-guest-memory -l FILE   (when QEMU has lzo)
#   ovmf.kdump-snappy    dump-guest-memory -s FILE   (when QEMU has snappy)
#   ovmf.raw             pmemsave of 0-256 MiB, 768 MiB-1 GiB and 4 GiB-4.5 GiB, joined: a
#                        raw image with memory map
#                        0x0-0xfffffff,0x30000000-0x3fffffff,0x100000000-0x11fffffff
#   ovmf.kdump-plain     makedumpfile -R of ovmf.kdump-zlib (plain form)  (with makedumpfile)
#   ovmf.kdump-lzo-makedumpfile  makedumpfile -l -d 0 of the ELF core       (with makedumpfile)
#   provenance.txt       QEMU version, firmware hash, command line, sizes
# QEMU 7.2 writes kdump files in makedumpfile's flattened form.
#
# Needs qemu-system-x86_64 (Debian package qemu-system-x86), OVMF (package
# ovmf) and python3; about 2.7 GiB free in OUTDIR. Override the programs
# with QEMU=... and the firmware directory with OVMF_DIR=...
set -euo pipefail

QEMU=${QEMU:-qemu-system-x86_64}
OVMF_DIR=${OVMF_DIR:-/usr/share/OVMF}
wait_s=6
outdir=
while [ $# -gt 0 ]; do
    case "$1" in
    --wait) wait_s=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) [ -z "$outdir" ] || { echo "one OUTDIR only" >&2; exit 2; }; outdir=$1; shift ;;
    esac
done
[ -n "$outdir" ] || { echo "usage: $0 [--wait S] OUTDIR" >&2; exit 2; }
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/qemu-dumps.XXXXXX")
qemu_pid=
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

rm -f "$outdir"/ovmf.* "$outdir"/provenance.txt
cp "$OVMF_DIR/OVMF_VARS_4M.fd" "$work/vars.fd"
args=(-machine q35,accel=tcg,max-ram-below-4g=1G -m 1536M -smp 2
    -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_DIR/OVMF_CODE_4M.fd"
    -drive if=pflash,format=raw,unit=1,file="$work/vars.fd"
    -nic none -display none -serial none
    -monitor unix:"$work/monitor.sock",server=on,wait=off)
"$QEMU" "${args[@]}" &
qemu_pid=$!
sleep "$wait_s"
python3 - "$work/monitor.sock" "$outdir" <<'PY'
import socket, sys

sock_path, outdir = sys.argv[1:3]
s = socket.socket(socket.AF_UNIX)
s.settimeout(900)
s.connect(sock_path)

def until_prompt():
    buf = b""
    while not buf.endswith(b"(qemu) "):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("monitor closed the connection")
        buf += chunk
    return buf.decode(errors="replace")

until_prompt()
def run(cmd):
    s.sendall(cmd.encode() + b"\n")
    out = until_prompt()
    # The monitor echoes the command; anything else before the prompt is an error.
    text = out.replace("(qemu) ", "").strip().splitlines()
    return [l for l in text if cmd not in l and l.strip()]

run("stop")
errs = run(f"dump-guest-memory {outdir}/ovmf.elf")
if errs:
    sys.exit("dump-guest-memory (ELF): " + " ".join(errs))
# A raw image as QEMU reads guest-physical memory: the first 256 MiB, the last 256 MiB below
# 1 GiB (where the firmware lives) and the 512 MiB above 4 GiB, joined below (memory map
# 0x0-0xfffffff,0x30000000-0x3fffffff,0x100000000-0x11fffffff).
for addr, size, name in ((0, 0x10000000, "1"), (0x30000000, 0x10000000, "2"), (0x100000000, 0x20000000, "3")):
    # Quoted: the size is an expression, and a path after it would read as a division.
    errs = run(f"pmemsave {addr:#x} {size:#x} \"{outdir}/ovmf-{name}.part\"")
    if errs:
        sys.exit("pmemsave: " + " ".join(errs))
for flag, name in (("-z", "zlib"), ("-l", "lzo"), ("-s", "snappy")):
    errs = run(f"dump-guest-memory {flag} {outdir}/ovmf.kdump-{name}")
    if errs:
        print(f"kdump-{name}: not written: {' '.join(errs)}")
s.sendall(b"quit\n")
while s.recv(65536):
    pass
PY
wait "$qemu_pid" || true
qemu_pid=
cat "$outdir/ovmf-1.part" "$outdir/ovmf-2.part" "$outdir/ovmf-3.part" >"$outdir/ovmf.raw"
rm -f "$outdir"/ovmf-*.part
# makedumpfile (Debian package makedumpfile), when present, writes the same guest again:
# the flattened file reassembled into a plain one (-R), and an LZO kdump file made from the
# ELF core. makedumpfile expects the program headers right after the ELF header, where QEMU 7.2
# puts a section header; a temporary copy with the program headers moved there (same segment
# data and offsets) is what it reads.
if command -v makedumpfile >/dev/null; then
    makedumpfile -R "$outdir/ovmf.kdump-plain" <"$outdir/ovmf.kdump-zlib" >/dev/null
    cp "$outdir/ovmf.elf" "$work/phdr64.elf"
    chmod u+w "$work/phdr64.elf"
    python3 - "$work/phdr64.elf" <<'PY'
import struct, sys

with open(sys.argv[1], "r+b") as f:
    eh = bytearray(f.read(64))
    (phoff,) = struct.unpack_from("<Q", eh, 32)
    (phentsize, phnum) = struct.unpack_from("<HH", eh, 54)
    f.seek(phoff)
    ph = f.read(phentsize * phnum)
    if 64 + len(ph) > struct.unpack_from("<Q", ph, 8)[0]:
        sys.exit("no room for the program headers before the first segment")
    struct.pack_into("<Q", eh, 32, 64)  # e_phoff
    struct.pack_into("<Q", eh, 40, 0)  # e_shoff
    struct.pack_into("<HHH", eh, 58, 0, 0, 0)  # e_shentsize, e_shnum, e_shstrndx
    f.seek(0)
    f.write(eh)
    f.write(ph)
PY
    makedumpfile -l -d 0 "$work/phdr64.elf" "$outdir/ovmf.kdump-lzo-makedumpfile" >/dev/null
    rm -f "$work/phdr64.elf"
fi
{
    echo "qemu: $("$QEMU" --version | head -n1)"
    if command -v makedumpfile >/dev/null; then
        echo "makedumpfile: $(dpkg-query -W -f='${Version}' makedumpfile 2>/dev/null || echo present)"
    fi
    echo "firmware: $OVMF_DIR/OVMF_CODE_4M.fd sha256 $(sha256sum "$OVMF_DIR/OVMF_CODE_4M.fd" | cut -d' ' -f1)"
    echo "command: $QEMU ${args[*]}"
    echo "stopped after: ${wait_s} s"
    for f in "$outdir"/ovmf.*; do echo "$(basename "$f"): $(stat -c %s "$f") bytes"; done
} >"$outdir/provenance.txt"
cat "$outdir/provenance.txt"
