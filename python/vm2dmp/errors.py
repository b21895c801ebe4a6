"""Exceptions raised by vm2dmp.

Every error of the library is a :class:`Error`; its subclasses say what went wrong and carry
the facts as attributes (the file, the structure, the byte offset, the guest address), so a
script can tell a damaged input from a hole in guest memory without parsing the message.
``str(e)`` is the one-line message the ``vm2dmp`` command prints.

=========================  =======================================================
exception                  raised when
=========================  =======================================================
:class:`InputError`        an input file cannot be opened or read (also an ``OSError``)
:class:`MissingFileError`  the memory file of a ``.vsv`` (its ``.bin``) is not found
:class:`CorruptError`      a structure of an input file is inconsistent or truncated
:class:`UnsupportedError`  the input is valid but uses a variant vm2dmp does not read
:class:`NoMemoryError`     the file holds no guest memory (running VM, configuration)
:class:`HoleError`         a guest-physical read touches an address with no RAM
:class:`DumpError`         a kernel dump cannot be parsed or read
:class:`OutputExistsError` the output exists and ``force`` was not given
:class:`NoSpaceError`      the disk has not enough free space for the output
:class:`CancelledError`    the operation was cancelled (Ctrl-C)
=========================  =======================================================

An exception raised by a progress callback is not wrapped: it cancels the conversion and is
raised as it is.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
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
]


class Error(Exception):
    """Base class of every vm2dmp error. ``str(e)`` is the full message.

    Attributes:
        message: the message, as ``str(e)`` gives it.
        path: the file the error is about, or ``None``.
    """

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # keep the attributes through pickling (process pools)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls, message, attrs):
    e = cls.__new__(cls)
    Exception.__init__(e, message)
    e.__dict__.update(attrs)
    return e


class InputError(Error, OSError):
    """An input file could not be opened or read. Also an :class:`OSError`, with ``errno``
    and ``filename`` set from the operating system's error.

    Attributes:
        path: the input file.
        action: what failed, in words (``"cannot open"``, ``"cannot read"``).
    """

    def __init__(
        self,
        message: str,
        path: Optional[str] = None,
        action: Optional[str] = None,
        errno: Optional[int] = None,
    ) -> None:
        OSError.__init__(self, errno, message, path)
        self.message = message
        self.path = path
        self.action = action


class MissingFileError(InputError):
    """The memory file (``.bin``) of a ``.vsv`` was not found beside it.

    Attributes:
        path: the ``.vsv``.
        tried: the names looked for.
    """

    def __init__(self, message: str, path: Optional[str] = None, tried: str = "") -> None:
        super().__init__(message, path, "memory file not found", 2)
        self.tried = tried


class CorruptError(Error):
    """A structure of an input file is inconsistent or truncated.

    Attributes:
        path: the file.
        structure: the structure's name (``"HVS header"``, ``"file signature"``, ...).
        offset: byte offset of the structure in the file.
        detail: what is wrong with it.
    """

    def __init__(
        self,
        message: str,
        path: Optional[str] = None,
        structure: str = "",
        offset: int = 0,
        detail: str = "",
    ) -> None:
        super().__init__(message, path)
        self.structure = structure
        self.offset = offset
        self.detail = detail


class UnsupportedError(Error):
    """The file is valid as far as vm2dmp can tell but uses a variant it does not read.

    Attributes:
        path: the file.
        detail: the variant.
    """

    def __init__(self, message: str, path: Optional[str] = None, detail: str = "") -> None:
        super().__init__(message, path)
        self.detail = detail


class NoMemoryError(Error):
    """A well-formed file that holds no guest memory (a running VM's state, a production
    checkpoint, a configuration).

    Attributes:
        path: the file.
        detail: why it holds none.
    """

    def __init__(self, message: str, path: Optional[str] = None, detail: str = "") -> None:
        super().__init__(message, path)
        self.detail = detail


class HoleError(Error):
    """A guest-physical read touched an address with no RAM behind it (an MMIO hole, or
    beyond the end of RAM).

    Attributes:
        gpa: the first guest-physical address not backed by RAM.
    """

    def __init__(self, message: str, gpa: int = 0) -> None:
        super().__init__(message, None)
        self.gpa = gpa


class DumpError(Error):
    """A kernel dump could not be parsed, or a page it does not hold was read.

    Attributes:
        path: the dump file.
        detail: what is wrong.
    """

    def __init__(self, message: str, path: Optional[str] = None, detail: str = "") -> None:
        super().__init__(message, path)
        self.detail = detail


class OutputExistsError(Error, FileExistsError):
    """The output file exists and ``force=True`` was not given. Also a
    :class:`FileExistsError`.

    Attributes:
        path: the output file.
    """

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        FileExistsError.__init__(self, 17, message, path)
        self.message = message
        self.path = path


class NoSpaceError(Error):
    """Not enough free disk space for the output.

    Attributes:
        path: the output file.
        needed: bytes the output needs.
        available: bytes the file system reports available.
    """

    def __init__(
        self, message: str, path: Optional[str] = None, needed: int = 0, available: int = 0
    ) -> None:
        super().__init__(message, path)
        self.needed = needed
        self.available = available


class CancelledError(Error):
    """The operation was cancelled (Ctrl-C while it ran)."""
