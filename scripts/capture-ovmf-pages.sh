#!/usr/bin/env bash
# Captures real firmware memory for the XPRESS decoder's page corpus
# (testdata/ovmf-pages/): boots QEMU with Debian's OVMF to the UEFI shell
# (no network card: its iPXE ROM would spend the wait in DHCP),
# dumps guest memory with the monitor's `dump-guest-memory` (ELF), keeps
# the distinct non-zero 4 KiB pages in guest-physical address order, takes
# COUNT of them evenly spread over that list, and stores each one
# compressed by vm2dmp-xpress's encoder with a length prefix.
#
# Usage: scripts/capture-ovmf-pages.sh [options] OUTDIR
#
#   --from-pages FILE  skip the boot: FILE already holds distinct non-zero
#                      pages (a previous --all-pages output)
#   --all-pages FILE   also keep every distinct non-zero page in FILE
#                      (some 20 MB: not for the repository)
#   --count N          pages in the corpus (default 1024)
#   --wait S           seconds from start to dump (default 12)
#
# Writes OUTDIR/pages.xpress and OUTDIR/pages.sha256 (SHA-256 of the
# selected raw pages, concatenated). Needs qemu-system-x86_64 (Debian
# package qemu-system-x86), OVMF (package ovmf), python3, cargo, and
# 6 GiB of free space in TMPDIR for the dump. Override the programs with
# QEMU=... and the firmware directory with OVMF_DIR=...
#
# Memory contents differ from boot to boot (timer counts, random seeds,
# buffer addresses), so a new capture is similar to the committed one
# but not identical.
set -euo pipefail

QEMU=${QEMU:-qemu-system-x86_64}
OVMF_DIR=${OVMF_DIR:-/usr/share/OVMF}
count=1024
wait_s=12
from_pages=
all_pages=
outdir=

while [ $# -gt 0 ]; do
    case "$1" in
    --from-pages) from_pages=$2; shift 2 ;;
    --all-pages) all_pages=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) [ -z "$outdir" ] || { echo "one OUTDIR only" >&2; exit 2; }; outdir=$1; shift ;;
    esac
done
[ -n "$outdir" ] || { echo "usage: $0 [options] OUTDIR (see --help)" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
[ -z "$from_pages" ] || from_pages=$(cd "$(dirname "$from_pages")" && pwd)/$(basename "$from_pages")
work=$(mktemp -d "${TMPDIR:-/tmp}/ovmf-pages.XXXXXX")
qemu_pid=
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$from_pages" ]; then
    cp "$OVMF_DIR/OVMF_VARS_4M.fd" "$work/vars.fd"
    echo "booting $("$QEMU" --version | head -n1)"
    echo "firmware $OVMF_DIR/OVMF_CODE_4M.fd sha256 $(sha256sum "$OVMF_DIR/OVMF_CODE_4M.fd" | cut -d' ' -f1)"
    "$QEMU" -machine q35,accel=tcg -m 6G -smp 2 \
        -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_DIR/OVMF_CODE_4M.fd" \
        -drive if=pflash,format=raw,unit=1,file="$work/vars.fd" \
        -nic none -display none -serial file:"$work/serial.log" \
        -monitor unix:"$work/monitor.sock",server=on,wait=off &
    qemu_pid=$!
    sleep "$wait_s"
    echo "stop, dump-guest-memory, quit (after ${wait_s} s)"
    # The monitor answers each command with its output and a new prompt;
    # dump-guest-memory returns once the file is written.
    python3 - "$work/monitor.sock" "$work/guest.elf" <<'PY'
import socket, sys

sock_path, dump = sys.argv[1:3]
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
    return buf

until_prompt()
for cmd in ("stop", "dump-guest-memory " + dump):
    s.sendall(cmd.encode() + b"\n")
    until_prompt()
s.sendall(b"quit\n")
while s.recv(65536):  # QEMU closes the connection as it exits
    pass
s.close()
PY
    wait "$qemu_pid" || true
    qemu_pid=
    if grep -aq 'Shell>' "$work/serial.log"; then
        echo "serial console: the UEFI shell prompt was reached"
    else
        echo "serial console: no UEFI shell prompt seen (consider a longer --wait)"
    fi

    # Distinct non-zero pages of the PT_LOAD segments, in address order.
    python3 - "$work/guest.elf" "$work/all-pages.bin" <<'PY'
import struct, sys

dump, out = sys.argv[1:3]
PAGE = 4096
zero = bytes(PAGE)
seen = set()
total = zeros = dups = 0
with open(dump, "rb") as f, open(out, "wb") as o:
    eh = f.read(64)
    if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
        sys.exit("not a little-endian ELF64 file")
    (phoff,) = struct.unpack_from("<Q", eh, 32)
    phentsize, phnum = struct.unpack_from("<HH", eh, 54)
    if phnum == 0xFFFF:
        sys.exit("too many program headers")
    f.seek(phoff)
    ph = f.read(phentsize * phnum)
    loads = []
    for k in range(phnum):
        p_type, _, p_offset, _, p_paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", ph, k * phentsize
        )
        if p_type == 1 and p_filesz:
            loads.append((p_paddr, p_offset, p_filesz))
    for paddr, offset, size in sorted(loads):
        f.seek(offset)
        left = size - size % PAGE
        while left:
            buf = f.read(min(left, 1 << 24))
            if not buf:
                sys.exit("dump truncated")
            left -= len(buf)
            for i in range(0, len(buf), PAGE):
                page = buf[i : i + PAGE]
                total += 1
                if page == zero:
                    zeros += 1
                elif page in seen:
                    dups += 1
                else:
                    seen.add(page)
                    o.write(page)
print(f"{total} pages: {zeros} zero, {dups} repeats, {len(seen)} distinct non-zero")
PY
    rm -f "$work/guest.elf"
    from_pages=$work/all-pages.bin
    if [ -n "$all_pages" ]; then
        cp "$from_pages" "$all_pages"
        echo "all distinct non-zero pages: $all_pages"
    fi
fi

# COUNT pages evenly spread: page k * total // COUNT for k < COUNT.
python3 - "$from_pages" "$count" "$work/selected.bin" "$outdir/pages.sha256" <<'PY'
import hashlib, sys

src, count, out, sha_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
PAGE = 4096
data = open(src, "rb").read()
if not data or len(data) % PAGE:
    sys.exit(f"{src}: not a whole number of pages")
total = len(data) // PAGE
picks = range(total) if total <= count else [k * total // count for k in range(count)]
sel = b"".join(data[p * PAGE : (p + 1) * PAGE] for p in picks)
open(out, "wb").write(sel)
open(sha_out, "w").write(hashlib.sha256(sel).hexdigest() + "\n")
print(f"source {src}: {total} pages, sha256 {hashlib.sha256(data).hexdigest()}")
print(f"selected {len(sel) // PAGE} pages, sha256 {hashlib.sha256(sel).hexdigest()}")
PY

(cd "$repo" && cargo run --release --quiet -p vm2dmp-xpress --example pack_pages -- \
    "$work/selected.bin" "$outdir/pages.xpress")
echo "wrote $outdir/pages.xpress and $outdir/pages.sha256"
