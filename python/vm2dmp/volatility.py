"""A volatility3 layer reading guest-physical memory through vm2dmp, and the stacker that
puts it under volatility3's own layers when a file is a Hyper-V saved state.

With the wheel installed, ``vol -f vm.vmrs windows.pslist`` (or ``-f vm.vsv`` / ``-f vm.bin``
of a ``.vsv`` + ``.bin`` pair) just works: the wheel puts a one-line plugin into
``volatility3/plugins/`` that imports this module, and volatility3 imports every file there at
start-up. Where that shim is not beside volatility3 (volatility3 run from a clone, or installed
in another environment), name the folder holding it::

    vol -p "$(python -c 'import vm2dmp.volatility as v; print(v.PLUGIN_DIR)')" -f vm.vmrs windows.info

The layer (:class:`Vm2dmpLayer`) is a leaf data layer: guest-physical addresses in, bytes out,
reads of MMIO holes fail as volatility3 expects, and scans visit only guest RAM. When vm2dmp's
kernel discovery found a Windows kernel, the layer publishes the kernel's page-table root
(``page_map_offset``), ``os`` and ``architecture`` as metadata, which volatility3's Windows
stacker uses instead of scanning for it.

Which formats the stacker claims: Hyper-V saved states and kdump-compressed files (formats
volatility3 has no layer for). ELF cores and VMware state are left to volatility3's own
layers; set ``VM2DMP_VOLATILITY_FORMATS`` to a comma-separated list of ``hyperv``, ``kdump``,
``elf``, ``vmware`` (or ``all``, or ``none``) to change that.
"""

from __future__ import annotations

import bisect
import logging
import os
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Optional, Tuple

from volatility3.framework import constants, exceptions, interfaces
from volatility3.framework.configuration import requirements

from . import _vm2dmp
from .errors import Error, HoleError

vollog = logging.getLogger(__name__)

#: The folder to give volatility3 with ``-p`` when the plugins shim is not installed.
PLUGIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "volatility_plugins")

#: Formats the stacker claims unless ``VM2DMP_VOLATILITY_FORMATS`` says otherwise.
DEFAULT_FORMATS = frozenset({"hyperv", "kdump"})

_ALL_FORMATS = frozenset({"hyperv", "kdump", "elf", "vmware"})

#: Bytes of a file's start looked at to recognise it.
HEAD_LEN = 8192


def claimed_formats() -> frozenset:
    """The formats the stacker claims: ``VM2DMP_VOLATILITY_FORMATS`` or
    :data:`DEFAULT_FORMATS`."""
    spec = os.environ.get("VM2DMP_VOLATILITY_FORMATS")
    if spec is None:
        return DEFAULT_FORMATS
    names = {s.strip().lower() for s in spec.split(",") if s.strip()}
    if "all" in names:
        return _ALL_FORMATS
    return frozenset(names & _ALL_FORMATS)


def location_to_path(location: str) -> Optional[str]:
    """The local path of a ``file://`` location (or of a plain path), else ``None``."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme == "file":
        return urllib.request.url2pathname(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return location
    return None


def _metadata(state: "_vm2dmp.SavedState") -> Dict[str, Any]:
    """Metadata for volatility3: the kernel's page-table root only when kernel discovery found
    the kernel through it, in a paging mode volatility3's Windows layers walk."""
    dtb = state.kernel_dtb()
    if dtb is None:
        return {}
    root, paging = dtb
    if paging == "Long4":
        return {"os": "Windows", "architecture": "Intel64", "page_map_offset": root}
    if paging in ("Pae", "Bit32"):
        return {
            "os": "Windows",
            "architecture": "Intel32",
            "pae": paging == "Pae",
            "page_map_offset": root,
        }
    return {}


class Vm2dmpLayer(interfaces.layers.DataLayerInterface):
    """Guest-physical memory of a saved state vm2dmp reads (Hyper-V ``.vmrs`` / ``.vsv`` +
    ``.bin`` and the other formats of :func:`vm2dmp.open`), as a volatility3 data layer.

    Configuration: ``location``, a ``file://`` URL (or path) of the saved state. Addresses
    outside guest RAM are invalid: reading them raises ``InvalidAddressException`` unless
    ``pad`` is set (then they read as zeros), and scans skip them.
    """

    def __init__(
        self,
        context: interfaces.context.ContextInterface,
        config_path: str,
        name: str,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(context=context, config_path=config_path, name=name, metadata=metadata)
        self._location = self.config["location"]
        path = location_to_path(self._location)
        if path is None:
            raise exceptions.LayerException(
                name, f"vm2dmp reads local files only, not {self._location}"
            )
        try:
            self._state = _vm2dmp.open(path)
        except Error as e:
            raise exceptions.LayerException(name, str(e)) from e
        self._ranges: List[Tuple[int, int]] = list(self._state.ranges)
        self._starts = [start for start, _ in self._ranges]
        published = _metadata(self._state)
        if published:
            vollog.debug(f"vm2dmp: kernel page-table root {published['page_map_offset']:#x}")
        self._metadata = {**published, **(metadata or {})}

    @property
    def location(self) -> str:
        """The location this layer reads (a ``file://`` URL)."""
        return self._location

    @property
    def state(self) -> "_vm2dmp.SavedState":
        """The :class:`vm2dmp.SavedState` read."""
        return self._state

    @property
    def ranges(self) -> List[Tuple[int, int]]:
        """Guest RAM as ``(start, end)`` pairs, end exclusive."""
        return list(self._ranges)

    @property
    def maximum_address(self) -> int:
        """The last byte of guest RAM."""
        return self._ranges[-1][1] - 1 if self._ranges else 0

    @property
    def minimum_address(self) -> int:
        """Always 0 (guest-physical address space)."""
        return 0

    def _range_at(self, offset: int) -> Optional[Tuple[int, int]]:
        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0 and offset < self._ranges[i][1]:
            return self._ranges[i]
        return None

    def is_valid(self, offset: int, length: int = 1) -> bool:
        """True when every byte of ``[offset, offset + length)`` is guest RAM."""
        if offset < 0:
            return False
        end = offset + max(length, 1)
        while offset < end:
            r = self._range_at(offset)
            if r is None:
                return False
            offset = r[1]
        return True

    def mapping(
        self, offset: int, length: int, ignore_errors: bool = False
    ) -> Iterable[Tuple[int, int, int, int, str]]:
        """The RAM pieces of ``[offset, offset + length)`` as
        ``(offset, length, offset, length, layer name)``; a hole raises
        ``InvalidAddressException`` unless ``ignore_errors``."""
        end = offset + length
        for start, length_ in self._pieces(offset, end, ignore_errors):
            yield start, length_, start, length_, self.name

    def _pieces(self, offset: int, end: int, ignore_errors: bool) -> Iterable[Tuple[int, int]]:
        pos = offset
        i = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        while pos < end:
            while i < len(self._ranges) and self._ranges[i][1] <= pos:
                i += 1
            if i >= len(self._ranges) or self._ranges[i][0] >= end:
                if not ignore_errors:
                    raise exceptions.InvalidAddressException(
                        self.name, pos, f"Offset {pos:#x} is outside guest RAM"
                    )
                return
            start, stop = self._ranges[i]
            if start > pos and not ignore_errors:
                raise exceptions.InvalidAddressException(
                    self.name, pos, f"Offset {pos:#x} is outside guest RAM"
                )
            piece_start = max(start, pos)
            piece_end = min(stop, end)
            yield piece_start, piece_end - piece_start
            pos = piece_end

    def read(self, offset: int, length: int, pad: bool = False) -> bytes:
        """``length`` bytes from ``offset``; with ``pad``, bytes outside guest RAM read as
        zeros, else they raise ``InvalidAddressException``."""
        if length <= 0:
            return b""
        if not pad:
            try:
                return self._state.read_phys(offset, length)
            except HoleError as e:
                raise exceptions.InvalidAddressException(
                    self.name, e.gpa, f"Offset {e.gpa:#x} is outside guest RAM"
                ) from None
            except OverflowError:
                raise exceptions.InvalidAddressException(
                    self.name, offset, f"Offset {offset:#x} is outside guest RAM"
                ) from None
        out = bytearray(length)
        for start, size in self._pieces(max(offset, 0), offset + length, True):
            out[start - offset : start - offset + size] = self._state.read_phys(start, size)
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        """Saved states are read-only."""
        raise exceptions.LayerException(self.name, "vm2dmp layers are read-only")

    def _scan_iterator(
        self, scanner: interfaces.layers.ScannerInterface, sections: Iterable[Tuple[int, int]]
    ) -> Iterable[Any]:
        """Chunks of the sections that are guest RAM: a hole never costs a chunk."""
        for section_start, section_length in sections:
            end = section_start + section_length
            for start, length in self._pieces(max(section_start, 0), end, True):
                offset = start
                while length > 0:
                    chunk_size = min(length, scanner.chunk_size + scanner.overlap)
                    yield [(self.name, offset, chunk_size)], offset + chunk_size
                    if chunk_size > scanner.chunk_size:
                        chunk_size -= scanner.overlap
                    length -= chunk_size
                    offset += chunk_size

    def __getstate__(self) -> Dict[str, Any]:
        # The SavedState pickles by path and options: a worker process opens it again.
        return self.__dict__

    def destroy(self) -> None:
        """Nothing to close: files are released with the state."""

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return [requirements.StringRequirement(name="location", optional=False)]


class Vm2dmpStacker(interfaces.automagic.StackerLayerInterface):
    """Stacks a :class:`Vm2dmpLayer` on a file layer whose first bytes are a format vm2dmp
    claims (:func:`claimed_formats`)."""

    stack_order = 5

    @classmethod
    def stack(
        cls,
        context: interfaces.context.ContextInterface,
        layer_name: str,
        progress_callback: constants.ProgressCallback = None,
    ) -> Optional[interfaces.layers.DataLayerInterface]:
        layer = context.layers[layer_name]
        location = getattr(layer, "location", None)
        if not isinstance(location, str) or isinstance(layer, Vm2dmpLayer):
            return None
        if location_to_path(location) is None:
            return None
        try:
            size = min(HEAD_LEN, layer.maximum_address + 1)
            head = layer.read(0, size, pad=True)
        except exceptions.InvalidAddressException:
            return None
        kind = _vm2dmp.detect(head)
        if kind is None or kind not in claimed_formats():
            return None
        new_name = context.layers.free_layer_name("Vm2dmpLayer")
        context.config[interfaces.configuration.path_join(new_name, "location")] = location
        try:
            return Vm2dmpLayer(context, new_name, new_name)
        except exceptions.LayerException as e:
            vollog.warning(f"vm2dmp: {location}: {e}")
            return None
