"""Atomic WebDataset shard writer with a per-unit manifest.

Tars are written with the standard library in the layout webdataset's TarWriter produces (PAX headers,
members of a sample in sorted extension order, fixed mtime/mode/owner): the same bytes, without importing
webdataset, which pulls in torch (1.5 s per worker), and with each member's bytes written once, straight
from the caller's buffer. Tars are written under hidden temporary names and renamed
when complete; the unit's manifest is renamed into place last (and only while its tars are all
there), so a killed writer leaves either a committed unit or only debris that
`units.cleanup_uncommitted` removes. Inside a fenced run every rename checks the run's token.
"""

import json
import re
import tarfile
from pathlib import Path
from types import TracebackType

from vlforge.shards.atomic import commit, temp_path
from vlforge.shards.keys import KeyAllocator
from vlforge.shards.manifest import DROPPED, KEPT, write_manifest

TAR_HEADER_BYTES = 512
_TAR_RECORD_BYTES = tarfile.RECORDSIZE  # a closed tar is padded to a multiple of this, as tarfile does
_EXTENSION = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")


def encode_member(value: bytes | str | dict | list) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    raise TypeError(f"cannot store a {type(value).__name__} in a shard member")


def _member_info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, mtime, 0o444, "vlforge", "vlforge"
    return info


def _pax_mtime_block() -> bytes | None:
    """The PAX record block tarfile puts before every member header for webdataset's float mtime 0.0: the same
    bytes for every member whose name and size fit a plain ustar header, so it is made once (None: this Python's
    tarfile lays it out otherwise, and every header is made in full)."""
    full = _member_info("k.txt", 1, 0.0).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    plain = _member_info("k.txt", 1, 0).tobuf(tarfile.USTAR_FORMAT, "ascii", "strict")
    return full[: -len(plain)] if full.endswith(plain) else None


_PAX_MTIME = _pax_mtime_block()
_USTAR_SIZE_LIMIT = 8**11  # ustar's 11 octal digits; larger sizes need a PAX size record
_USTAR_BLANK = _member_info("", 0, 0).tobuf(tarfile.USTAR_FORMAT, "ascii", "strict")  # name, size, checksum
# filled in per member by _ustar_header


def _ustar_header(name: bytes, size: int) -> bytes:
    """tarfile's ustar header for a member of `_member_info`'s fields, filled in without building a TarInfo
    (a tenth of the cost): name, size (11 octal digits), then the checksum as tarfile writes it."""
    block = bytearray(_USTAR_BLANK)
    block[: len(name)] = name
    block[124:136] = b"%011o\0" % size
    block[148:156] = b"        "
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


def member_header(name: str, size: int) -> bytes:
    """The header(s) webdataset's TarWriter writes for a member: a PAX block (a float mtime 0.0) and the ustar
    header. The PAX block is the cached one unless the name or size need PAX records of their own."""
    if _PAX_MTIME is not None and name.isascii() and len(name) <= 100 and size < _USTAR_SIZE_LIMIT:
        return _PAX_MTIME + _ustar_header(name.encode("ascii"), size)
    return _member_info(name, size, 0.0).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarFile:
    """Append-only tar of in-memory members, byte for byte what `webdataset.TarWriter(encoder=False,
    mtime=0.0, user="vlforge", group="vlforge")` writes."""

    def __init__(self, path: str | Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._offset = 0

    def write(self, key: str, members: dict[str, bytes]) -> None:
        for ext in sorted(members):
            data = members[ext]
            header = member_header(f"{key}.{ext}", len(data))
            padding = -len(data) % TAR_HEADER_BYTES
            self._file.write(header)
            self._file.write(data)
            self._file.write(bytes(padding))
            self._offset += len(header) + len(data) + padding

    def close(self) -> None:
        self._offset += 2 * TAR_HEADER_BYTES  # two zero blocks end the archive, then padding to a whole record
        self._file.write(bytes(2 * TAR_HEADER_BYTES + -self._offset % _TAR_RECORD_BYTES))
        self._file.close()


class ShardWriter:
    """Writes `{prefix}-{k:06d}.tar` shards and `{prefix}.manifest.parquet`.

    Members carry a fixed mtime, owner and mode so the same samples give the same bytes.
    """

    def __init__(
        self,
        out_dir: str | Path,
        prefix: str,
        max_samples: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if max_samples is not None and max_samples < 1:
            raise ValueError("max_samples must be >= 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.rows: list[dict] = []
        self.tars: list[Path] = []
        self._index = 0
        self._tar: TarFile | None = None  # while a shard is open
        self._tar_final: Path | None = None
        self._tar_temp: Path | None = None
        self._tar_samples = 0
        self._tar_bytes = 0
        self._keys = KeyAllocator()
        self._closed = False

    def write(self, key: str, files: dict[str, bytes | str | dict | list], row: dict | None = None) -> str:
        """Add one sample; returns the key it was stored under."""
        if not files:
            raise ValueError("a sample needs at least one member")
        members = {}
        for ext, value in files.items():
            if not _EXTENSION.match(ext):
                raise ValueError(f"bad member extension {ext!r}")
            members[ext] = encode_member(value)
        size = sum(len(v) + TAR_HEADER_BYTES for v in members.values())
        if self._tar is not None and self._full_after(size):
            self._finish_tar()
        if self._tar is None:
            self._open_tar()
        stored_key = self._keys.allocate(key)
        self._tar.write(stored_key, members)
        self._tar_samples += 1
        self._tar_bytes += size
        self.rows.append(
            {**(row or {}), "status": KEPT, "reason": None, "stage": None,
             "tar": self._tar_final.name, "key": stored_key}
        )
        return stored_key

    def drop(self, row: dict, reason: str, stage: str) -> None:
        """Record a sample that produced no tar member."""
        self.rows.append(
            {**row, "status": DROPPED, "reason": reason, "stage": stage, "tar": None, "key": None})

    def close(self) -> None:
        """Commit: last tar first, then the manifest."""
        if self._closed:
            return
        if self._tar is not None:
            self._finish_tar()
        write_manifest(self.out_dir, self.prefix, self.rows, self.tars)
        self._closed = True

    def abort(self) -> None:
        """Remove the temporary tar; finished tars stay until cleanup sees no manifest."""
        if self._tar is not None:
            self._tar.close()
            self._tar_temp.unlink(missing_ok=True)
            self._tar = None
        self._closed = True

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _full_after(self, size: int) -> bool:
        if self.max_samples is not None and self._tar_samples >= self.max_samples:
            return True
        return self.max_bytes is not None and self._tar_bytes + size > self.max_bytes

    def _open_tar(self) -> None:
        self._tar_final = self.out_dir / f"{self.prefix}-{self._index:06d}.tar"
        self._index += 1
        self._tar_temp = temp_path(self._tar_final)
        self._tar = TarFile(self._tar_temp)
        self._tar_samples = 0
        self._tar_bytes = 0
        self._keys = KeyAllocator()

    def _finish_tar(self) -> None:
        self._tar.close()
        commit(self._tar_temp, self._tar_final)
        self.tars.append(self._tar_final)
        self._tar = None
