"""`shards.tarstream.iter_members` reads what stdlib tarfile reads (the expected values come from tarfile), checks
every header, and refuses a cut-off or corrupt tar with tarfile.ReadError."""

import io
import os
import random
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from vlforge.shards.tarstream import SKIP_CHUNK, iter_members

FORMATS = [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]
LONG_DIR = "d" * 60 + "/" + "e" * 50  # with a 90-byte base name: over ustar's 100 bytes, splittable into its prefix
MiB = 1 << 20


def add(tar: tarfile.TarFile, name: str, data: bytes | None = b"", kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data or b"")
    tar.addfile(info, io.BytesIO(data) if data else None)


def build(members: list[tuple], fmt: int = tarfile.PAX_FORMAT, **options) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **options) as tar:
        for member in members:
            add(tar, *member)
    return buf.getvalue()


def tarfile_reads(raw: bytes) -> list[tuple[str, bytes | None]]:
    """What tarfile extracts: (name, bytes) of a file, (name, None) of anything else."""
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [(m.name, tar.extractfile(m).read() if m.isfile() else None) for m in tar]


def ours(stream, max_bytes: int = MiB) -> list[tuple[str, bytes | None]]:
    if isinstance(stream, bytes):
        stream = io.BytesIO(stream)
    return [(m.name, m.data) for m in iter_members(stream, max_bytes)]


def fix_checksum(header: bytearray, offset: int = 0) -> None:
    """Rewrite the checksum of the header at `offset` after its bytes were edited."""
    header[offset + 148 : offset + 156] = b" " * 8
    header[offset + 148 : offset + 156] = b"%06o\0 " % sum(header[offset : offset + 512])


def every_kind() -> list[tuple]:
    return [
        ("short.jpg", b"\xff\xd8 jpeg"),
        (f"{LONG_DIR}/{'n' * 90}.json", b'{"long": "name"}'),
        ("ünïcödé/字.txt", "ü字 caption".encode()),
        ("empty.txt", b""),
        ("folder", None, tarfile.DIRTYPE),
        ("link.jpg", None, tarfile.SYMTYPE, "short.jpg"),
        ("hard.jpg", None, tarfile.LNKTYPE, "short.jpg"),
        ("fifo", None, tarfile.FIFOTYPE),
        ("odd/size.bin", bytes(range(256)) * 3 + b"x"),
        ("last.txt", b"end"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_as_tarfile_reads(fmt):
    raw = build(every_kind(), fmt)
    assert {tarfile.USTAR_FORMAT: LONG_DIR.encode(),  # the long name's folders went into the prefix field
            tarfile.GNU_FORMAT: b"././@LongLink", tarfile.PAX_FORMAT: b" path="}[fmt] in raw
    assert (f"{LONG_DIR}/".encode() in raw) == (fmt != tarfile.USTAR_FORMAT)
    expected = tarfile_reads(raw)
    assert [name for name, _ in expected][:3] == ["short.jpg", f"{LONG_DIR}/{'n' * 90}.json", "ünïcödé/字.txt"]
    assert ours(raw) == expected


def test_a_link_has_no_data_whatever_its_size_field_says():
    raw = bytearray(build([("a.txt", b"abc"), ("hard.txt", None, tarfile.LNKTYPE, "a.txt"), ("b.txt", b"d")],
                          tarfile.USTAR_FORMAT))
    assert raw[1024:1032] == b"hard.txt"
    raw[1024 + 124 : 1024 + 136] = b"%011o\0" % 3  # the linked file's size, as some writers put it
    fix_checksum(raw, 1024)
    assert ours(bytes(raw)) == tarfile_reads(bytes(raw)) == [("a.txt", b"abc"), ("hard.txt", None), ("b.txt", b"d")]


def test_a_long_link_name_is_read_past():
    raw = build([("l", None, tarfile.SYMTYPE, "t" * 150), ("after.txt", b"a")], tarfile.GNU_FORMAT)
    assert b"././@LongLink" in raw
    assert ours(raw) == tarfile_reads(raw) == [("l", None), ("after.txt", b"a")]


def test_random_members_in_every_format_read_as_tarfile_reads():
    rng = random.Random(7)
    for trial in range(30):
        members = [(f"{i:05d}_{'x' * rng.choice([0, 95, 150])}{rng.choice(['', 'é字'])}.{rng.choice(['jpg', 'txt'])}",
                    rng.randbytes(rng.choice([0, 1, 511, 512, 513, rng.randrange(5000)])))
                   for i in range(rng.randrange(1, 12))]
        fmt = rng.choice([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
        raw = build(members, fmt)
        assert ours(raw) == tarfile_reads(raw) == members, trial


def test_the_fields_of_a_member():
    [file, folder, link] = iter_members(io.BytesIO(build([("a.txt", b"abc"), ("f", None, tarfile.DIRTYPE),
                                                          ("s", None, tarfile.SYMTYPE, "a.txt")])), MiB)
    assert (file.name, file.size, file.data, file.isfile, file.sparse) == ("a.txt", 3, b"abc", True, False)
    assert (folder.name, folder.data, folder.isfile) == ("f", None, False)
    assert (link.name, link.data, link.isfile) == ("s", None, False)


def test_a_pax_global_header_is_consumed():
    raw = build([("a.txt", b"1"), ("é.txt", b"2")], pax_headers={"comment": "batch 7"})
    assert raw[156:157] == tarfile.XGLTYPE
    assert ours(raw) == tarfile_reads(raw) == [("a.txt", b"1"), ("é.txt", b"2")]


def test_a_pax_global_header_that_renames_every_member_is_refused():
    raw = build([("a.txt", b"1")], pax_headers={"path": "elsewhere"})
    with pytest.raises(tarfile.ReadError, match="pax global header that sets path or size"):
        ours(raw)


def test_a_pax_size_record_sets_the_size():
    raw = bytearray(build([("é.txt", b"hello")]))  # a pax header for the name; add a size record to it
    pax_size = int(raw[124:135], 8)
    records = raw[512 : 512 + pax_size] + b"12 size=005\n"
    raw[124:136] = b"%011o\0" % len(records)
    raw[512:1024] = records.ljust(512, b"\0")
    raw[1024 + 124 : 1024 + 136] = b"%011o\0" % 999  # the ustar size field, overridden by the record
    fix_checksum(raw, 0)
    fix_checksum(raw, 1024)
    assert ours(bytes(raw)) == tarfile_reads(bytes(raw)) == [("é.txt", b"hello")]


def test_a_base_256_size_is_read():
    raw = bytearray(build([("a.txt", b"hello"), ("b.txt", b"!")], tarfile.GNU_FORMAT))
    raw[124:136] = b"\x80" + (5).to_bytes(11, "big")
    fix_checksum(raw)
    assert ours(bytes(raw)) == tarfile_reads(bytes(raw)) == [("a.txt", b"hello"), ("b.txt", b"!")]


def test_a_signed_checksum_is_accepted_as_tarfile_accepts_it():
    raw = bytearray(build([("ü.txt", b"x")], tarfile.USTAR_FORMAT))
    raw[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in raw[:512])
    raw[148:156] = b"%06o\0 " % signed
    assert ours(bytes(raw)) == tarfile_reads(bytes(raw)) == [("ü.txt", b"x")]


def sparse_tar(tmp_path: Path, *options: str) -> bytes:
    """GNU tar's sparse member between two files: 30 data runs between holes, which an old GNU header continues
    in two more blocks (it holds 4, each continuation 21)."""
    with open(tmp_path / "holes.jpg", "wb") as f:
        for run in range(30):
            f.seek(run * 256 * 1024)
            f.write(b"run %d " % run * 100)
        f.truncate(8 * MiB)
    (tmp_path / "a.txt").write_bytes(b"before")
    (tmp_path / "z.txt").write_bytes(b"after")
    subprocess.run(["tar", "--sparse", *options, "-cf", "s.tar", "a.txt", "holes.jpg", "z.txt"], cwd=tmp_path,
                   check=True)
    return (tmp_path / "s.tar").read_bytes()


@pytest.mark.parametrize("options", [["--format=gnu"], ["--format=posix", "--sparse-version=0.0"],
                                     ["--format=posix", "--sparse-version=0.1"],
                                     ["--format=posix", "--sparse-version=1.0"]])
def test_a_gnu_sparse_member_is_a_file_never_read(tmp_path, options):
    raw = sparse_tar(tmp_path, *options)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        expected = [(m.name, m.size, m.isfile()) for m in tar]
    assert expected[1] == ("holes.jpg", 8 * MiB, True)
    members = list(iter_members(io.BytesIO(raw), 16 * MiB))
    assert [(m.name, m.size, m.isfile) for m in members] == expected
    assert [(m.data, m.sparse) for m in members] == [(b"before", False), (None, True), (b"after", False)]


def test_errors_after_an_old_gnu_sparse_member_name_the_right_offset(tmp_path):
    raw = bytearray(sparse_tar(tmp_path, "--format=gnu"))
    at = raw.index(b"z.txt\0")
    raw[at] ^= 0x20
    with pytest.raises(tarfile.ReadError, match=f"bad header checksum at byte {at}:"):
        ours(bytes(raw), 16 * MiB)


class Counting(io.BytesIO):
    """A stream that counts the bytes read from it and may claim it cannot seek."""

    def __init__(self, raw: bytes, seekable: bool = True):
        super().__init__(raw)
        self.can_seek, self.bytes_read, self.largest_read = seekable, 0, 0

    def seekable(self) -> bool:
        return self.can_seek

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        self.largest_read = max(self.largest_read, len(data))
        return data


BIG = [("small.txt", b"s"), ("big.jpg", random.Random(1).randbytes(3 * MiB + 5)), ("after.txt", b"a")]


def test_a_member_over_max_bytes_is_seeked_past_unread():
    stream = Counting(build(BIG))
    assert ours(stream) == [("small.txt", b"s"), ("big.jpg", None), ("after.txt", b"a")]
    assert stream.bytes_read < 64 * 1024


def test_on_a_stream_that_cannot_seek_it_is_read_past_in_bounded_chunks():
    stream = Counting(build(BIG), seekable=False)
    members = list(iter_members(stream, MiB))
    assert [(m.name, m.size, m.data) for m in members] == [("small.txt", 1, b"s"), ("big.jpg", 3 * MiB + 5, None),
                                                            ("after.txt", 1, b"a")]
    assert stream.largest_read <= SKIP_CHUNK + 512


def test_a_pipe_is_read_as_a_file_is(tmp_path):
    raw = build(every_kind() + BIG)
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_end, raw), os.close(write_end)))
    writer.start()
    with open(read_end, "rb") as pipe:
        assert not pipe.seekable()
        got = ours(pipe)
    writer.join()
    assert got == [(name, None if name == "big.jpg" else data) for name, data in tarfile_reads(raw)]


def test_only_zero_blocks_is_an_empty_archive_and_an_empty_stream_an_error():
    assert ours(bytes(10240)) == tarfile_reads(bytes(10240)) == []
    with pytest.raises(tarfile.ReadError, match="empty file"):
        tarfile.open(fileobj=io.BytesIO(b""), mode="r|").close()
    with pytest.raises(tarfile.ReadError, match="empty file"):
        ours(b"")


def test_the_end_of_the_stream_between_two_members_ends_it_unless_the_end_block_is_required():
    raw = build([("a.txt", b"abc"), ("b.txt", b"d")])
    end = raw.rindex(b"d") + 512 - (raw.rindex(b"d") % 512)  # right after b.txt's padding: no zero blocks
    assert ours(raw[:end]) == [("a.txt", b"abc"), ("b.txt", b"d")]
    read = []
    with pytest.raises(tarfile.ReadError, match=rf"cut off between two members: no end-of-archive block at byte {end}"):
        read.extend(m.name for m in iter_members(io.BytesIO(raw[:end]), MiB, require_end=True))
    assert read == ["a.txt", "b.txt"]  # what came before the end is read all the same
    assert [m.name for m in iter_members(io.BytesIO(raw), MiB, require_end=True)] == ["a.txt", "b.txt"]


def test_the_first_zero_block_ends_it_as_in_tarfile():
    raw = build([("a.txt", b"abc")]) + build([("b.txt", b"d")])
    assert ours(raw) == tarfile_reads(raw) == [("a.txt", b"abc")]


CUT = build([("a.txt", b"abc"), ("é_" + "x" * 120 + ".jpg", b"j" * 5000), ("c.txt", b"c")])


@pytest.mark.parametrize(("end", "message"), [
    (512 + 2, r"member 'a\.txt' cut off: 2 of 3 bytes"),
    (512 + 100, r"cut off in the padding before byte 1024"),
    (1024 + 300, r"cut off in a header: 300 of 512 bytes at byte 1024"),  # the jpg's pax header
    (1536 + 50, r"header at byte 1024 cut off: 50 of 137 bytes"),  # its records
    (2560 + 1000, r"member 'é_x+\.jpg' cut off: 1000 of 5000 bytes"),
    (2560 + 5000 + 10, r"cut off in the padding before byte 7680"),
    (7680 + 511, r"cut off in a header: 511 of 512 bytes at byte 7680"),
])
def test_a_cut_off_tar_is_an_error(end, message):
    with pytest.raises(tarfile.ReadError, match=message):
        ours(CUT[:end])


def test_a_member_cut_off_while_skipped_is_an_error():
    raw = build(BIG)
    for seekable in (True, False):
        with pytest.raises(tarfile.ReadError, match=r"member 'big\.jpg' cut off"):
            ours(Counting(raw[: 2 * MiB], seekable))


def test_a_pax_header_with_no_member_after_it_is_an_error():
    raw = build([("é.txt", b"x")])
    with pytest.raises(tarfile.ReadError, match="no member after it"):
        ours(raw[:1024] + bytes(1024))
    with pytest.raises(tarfile.ReadError, match="no member after it"):
        ours(raw[:1024])


def test_a_pax_header_too_large_to_hold_is_refused():
    raw = bytearray(build([("é.txt", b"x")]))
    raw[124:136] = b"%011o\0" % (2 * MiB)
    fix_checksum(raw)
    with pytest.raises(tarfile.ReadError, match=f"pax or long-name header of {2 * MiB} bytes at byte 0: refused"):
        ours(bytes(raw))


@pytest.mark.parametrize("at", [0, 1024, 2048])  # é.txt's pax header, its ustar header, a.txt's header
def test_a_corrupt_header_is_an_error_not_the_end(at):
    raw = bytearray(build([("é.txt", b"x"), ("a.txt", b"abc")]))
    raw[at + 3] ^= 0x20
    with pytest.raises(tarfile.ReadError, match=f"bad header checksum at byte {at}"):
        ours(bytes(raw))


@pytest.mark.parametrize("garbage", [b"not a tar at all\n" * 100, random.Random(3).randbytes(4096), b"\x01" * 300])
def test_garbage_is_an_error(garbage):
    with pytest.raises(tarfile.ReadError):
        ours(garbage)


@pytest.mark.parametrize("records", [b"11 size=\xc2\xb2\n", b"34 size=" + b"9" * 25 + b"\n"])
def test_a_pax_size_that_is_no_byte_count_is_an_error(records):
    """Unicode digits and numbers past 2**63 were ValueErrors that failed a unit on every rerun."""
    raw = bytearray(build([("é.txt", b"hello")]))
    pax_size = int(raw[124:135], 8)
    records = raw[512 : 512 + pax_size] + records
    raw[124:136] = b"%011o\0" % len(records)
    raw[512:1024] = records.ljust(512, b"\0")
    fix_checksum(raw, 0)
    with pytest.raises(tarfile.ReadError, match="invalid size"):
        ours(bytes(raw))


def test_a_base_256_size_past_2_63_is_an_error():
    raw = bytearray(build([("a.txt", b"hello")], tarfile.GNU_FORMAT))
    raw[124:136] = b"\x80" + (2**80).to_bytes(11, "big")
    fix_checksum(raw)
    with pytest.raises(tarfile.ReadError, match="invalid size"):
        ours(bytes(raw))


def test_a_negative_size_is_an_error():
    raw = bytearray(build([("a.txt", b"hello")], tarfile.GNU_FORMAT))
    raw[124:136] = b"\xff" * 12
    fix_checksum(raw)
    with pytest.raises(tarfile.ReadError, match="invalid size"):
        ours(bytes(raw))


@pytest.mark.parametrize(("old", "new"), [(b"15 path=", b"16 path="), (b"15 path=", b"1x path="),
                                          (b"15 path=", b"15 path:"), (b"15 path=", b"14 path="),
                                          (b"15 path=", b"15_path="),  # no space: once an endless loop
                                          (b"15 path=", b"\xc2\xb2 path=")])  # a digit, but not ASCII
def test_a_malformed_pax_record_is_an_error(old, new):
    raw = build([("é.txt", b"x")])
    assert raw.count(old) == 1
    with pytest.raises(tarfile.ReadError, match="malformed pax header record"):
        ours(raw.replace(old, new))
