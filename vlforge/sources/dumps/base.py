"""What a dump reader is: one file format's header, row ranges and canonical batches, behind `READERS`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from vlforge.sources.dumps.schemas import ColumnOverrides, InputFile, RowRange

if TYPE_CHECKING:
    from vlforge.sources.download import Fetched
    from vlforge.sources.spill import Spill


class Reader(ABC):
    """One input file format. A new format is a subclass in its own module, registered in `readers.READERS`."""

    format: str = ""
    extensions: tuple[str, ...] = ()  # lower-case file name endings this reader claims

    def claims(self, path: str, schema: str) -> bool:
        """Whether this reader reads `path` once its columns matched `schema`."""
        return path.lower().endswith(self.extensions)

    @abstractmethod
    def header(self, path: str, overrides: ColumnOverrides) -> tuple[str, ...]:
        """The file's column names, read before any work."""

    def check(self, path: str, columns: dict[str, str]) -> None:
        """Refuse, before any work, a file whose mapped columns cannot be read (InputError); by default all can."""
        return

    def companion(self, path: str) -> str | None:
        """Another file this input reads beside `path` (an img2dataset shard's tar), or None."""
        return None

    @abstractmethod
    def ranges(self, f: InputFile, rows_per_unit: int) -> list[RowRange]:
        """The file split into row ranges of about `rows_per_unit` rows, one per work unit."""

    @abstractmethod
    def batches(self, f: InputFile, rng: RowRange | None, batch_size: int) -> Iterator[pa.Table]:
        """Canonical-column batches of the rows in `rng` (the whole file when None)."""

    def fetch(self, f: InputFile, table: pa.Table, spill: Spill) -> list[Fetched] | None:
        """The images this input carries for `table`'s rows, appended to `spill`; None: download them."""
        return None
