"""vm2dmp: read saved guest memory and convert it to Windows kernel crash dumps.

Reads Hyper-V saved states (``.vmrs``, ``.vsv`` + ``.bin``), QEMU/KVM and VirtualBox ELF cores,
kdump-compressed files, VMware ``.vmss``/``.vmsn`` + ``.vmem`` and raw images, and writes
kernel dumps that WinDbg, volatility3, kdmp-parser and MemProcFS open::

    import vm2dmp

    state = vm2dmp.open("vm.vmrs")
    print(state.kind, state.ranges, state.vcpus[0].cr3)
    page = state.read_phys(0x1000, 4096)
    report = state.convert("vm.dmp", progress=lambda done, total: print(done, total))
    print(vm2dmp.verify("vm.dmp", state)["ok"])

Errors are :class:`vm2dmp.Error` subclasses (see :mod:`vm2dmp.errors`). The volatility3 layer
that opens Hyper-V saved states is :mod:`vm2dmp.volatility`.
"""

from ._vm2dmp import DumpFile, SavedState, Vcpu, __version__, detect, open, verify
from .errors import (
    CancelledError,
    CorruptError,
    DumpError,
    Error,
    HoleError,
    InputError,
    MissingFileError,
    NoMemoryError,
    NoSpaceError,
    OutputExistsError,
    UnsupportedError,
)

__all__ = [
    "open",
    "detect",
    "verify",
    "SavedState",
    "Vcpu",
    "DumpFile",
    "Error",
    "InputError",
    "MissingFileError",
    "CorruptError",
    "UnsupportedError",
    "NoMemoryError",
    "HoleError",
    "DumpError",
    "OutputExistsError",
    "NoSpaceError",
    "CancelledError",
    "__version__",
]

# The native functions and classes belong to this package for pickling and help().
for _obj in (open, detect, verify, SavedState, Vcpu, DumpFile):
    try:
        _obj.__module__ = __name__
    except (AttributeError, TypeError):
        pass
del _obj
