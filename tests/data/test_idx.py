"""read_idx against the plain reference: real Fashion-MNIST, random files of every type, bad files."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.data import naive
from tests.data.conftest import FASHION, needs_fashion
from trainer.data import DataError, read_idx
from trainer.data.idx import decode_bytes, read_bytes


@needs_fashion
@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("train-images-idx3-ubyte.gz", (60000, 28, 28)),
        ("train-labels-idx1-ubyte.gz", (60000,)),
        ("t10k-images-idx3-ubyte.gz", (10000, 28, 28)),
        ("t10k-labels-idx1-ubyte.gz", (10000,)),
    ],
)
def test_real_fashion_mnist_matches_reference(name: str, shape: tuple[int, ...]) -> None:
    got = read_idx(FASHION / name)
    want = naive.read_idx(FASHION / name)
    assert got.shape == want.shape == shape
    assert got.dtype == want.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert got.flags.writeable


DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@st.composite
def idx_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7))
    return draw(hnp.arrays(dtype, shape))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(array=idx_arrays(), compressed=st.booleans(), gz_name=st.booleans())
def test_random_valid_files_round_trip(
    tmp_path: Path, array: np.ndarray, compressed: bool, gz_name: bool
) -> None:
    # A gzip file is recognised by its content whatever its name; a raw file must not say .gz.
    path = tmp_path / ("x.gz" if compressed and gz_name else "x-idx")
    data = naive.idx_bytes(array)
    path.write_bytes(gzip.compress(data, 1) if compressed else data)
    got = read_idx(path)
    assert got.dtype == array.dtype.newbyteorder("=")
    assert got.dtype.isnative
    assert got.shape == array.shape
    assert got.tobytes() == array.tobytes()  # bit-exact, NaNs and signed zeros included
    assert got.flags.writeable
    np.testing.assert_array_equal(got, naive.read_idx(path))


def test_multi_member_gzip_and_zero_padding_are_accepted(tmp_path: Path) -> None:
    data = naive.idx_bytes(np.arange(1000, dtype=np.int32))
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress(data[:10]) + gzip.compress(data[10:]) + b"\0" * 512)
    np.testing.assert_array_equal(read_idx(path), np.arange(1000, dtype=np.int32))
    # Up to 16 members (an empty end-of-file member as bgzip writes, `cat a.gz b.gz`) pass,
    # however small the data, and members may be as small as a byte.
    members = [gzip.compress(data[i : i + 1]) for i in range(4)] + [gzip.compress(data[4:])]
    path.write_bytes(b"".join(members) + gzip.compress(b"") * 11)  # 16 in all
    np.testing.assert_array_equal(read_idx(path), np.arange(1000, dtype=np.int32))


def test_decode_bytes_views_the_bytes_and_read_idx_copies_only_read_only_views(
    tmp_path: Path,
) -> None:
    raw = naive.idx_bytes(np.arange(10, dtype=np.uint8))
    packed = tmp_path / "a.gz"
    packed.write_bytes(gzip.compress(raw))
    assert not decode_bytes(packed, read_bytes(packed)).flags.writeable  # a view of the inflated
    assert read_idx(packed).flags.writeable
    # Raw files: a view of the buffer read, writable or not as that buffer is (the loader passes
    # a read-only one so that its arrays cannot change under the cache writer).
    plain = tmp_path / "a-idx"
    plain.write_bytes(raw)
    data = read_bytes(plain)
    assert decode_bytes(plain, data).flags.writeable
    assert not decode_bytes(plain, data.toreadonly()).flags.writeable
    # Multi-byte values are byteswapped where they lie when the buffer is writable.
    swapped = tmp_path / "b-idx"
    swapped.write_bytes(naive.idx_bytes(np.arange(10, dtype=np.int32)))
    data = read_bytes(swapped)
    array = decode_bytes(swapped, data)
    np.testing.assert_array_equal(array, np.arange(10, dtype=np.int32))
    assert np.shares_memory(array, np.frombuffer(data, np.uint8))


def _header(code: int, *shape: int) -> bytes:
    return struct.pack(f">HBB{len(shape)}I", 0, code, len(shape), *shape)


GOOD = _header(0x08, 3) + b"\x01\x02\x03"
HUGE = _header(0x08, 4_000_000_000, 28, 28) + bytes(100)

# (file name, content, words the one-sentence message must contain)
MALFORMED = [
    ("empty", b"", "file is empty"),
    ("empty.gz", b"", "file is empty"),
    ("short", b"\x00\x00", "too short"),
    ("magic", b"\x01\x00\x08\x01" + GOOD[4:], "not an idx file"),
    ("type", _header(0x0A, 3) + b"abc", "unknown idx type code 0x0A"),
    ("ndim0", b"\x00\x00\x08\x00", "zero dimensions"),
    ("header", _header(0x08, 3, 4)[:9], "header is truncated"),
    ("truncated", _header(0x0C, 4) + bytes(15), "truncated"),
    ("trailing", GOOD + b"\x04", "1 unexpected bytes after the data"),
    ("absurd", HUGE, "truncated"),
    ("absurd.gz", gzip.compress(HUGE), "more than"),
    ("notgzip.gz", GOOD, "not a gzip file despite its .gz name"),
    ("cut.gz", gzip.compress(GOOD + bytes(5000))[:-20], "gzip stream is truncated"),
    ("crc.gz", gzip.compress(GOOD)[:-8] + b"\0\0\0\0" + gzip.compress(GOOD)[-4:], "corrupt gzip"),
    ("garbage.gz", gzip.compress(GOOD) + b"junk", "unexpected bytes after the end of the gzip"),
    ("long.gz", gzip.compress(GOOD + b"\x09"), "data continues past the 11 bytes"),
    ("short.gz", gzip.compress(GOOD[:-1]), "truncated"),
    ("badheader.gz", gzip.compress(b"\x00\x00\x07\x01"), "unknown idx type code 0x07"),
    # Bounds from the declared size (trainer.data.gz): file size, then number of members.
    ("padded.gz", gzip.compress(GOOD) + bytes(70_000), "bytes of gzip for the 11 bytes"),
    ("members.gz", gzip.compress(GOOD) + gzip.compress(b"") * 16, "more than 16 gzip members"),
    ("lead.gz", gzip.compress(b"") * 17 + gzip.compress(GOOD), "gzip members before its idx"),
]


@pytest.mark.parametrize(("name", "content", "words"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_raise_one_sentence_naming_the_file(
    tmp_path: Path, name: str, content: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert words in message
    assert "\n" not in message


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope.gz")
    with pytest.raises(DataError, match="is a folder"):
        read_idx(tmp_path)


def _backends() -> list[str]:
    import importlib.util

    names = ["zlib"]
    names += ["isal"] if importlib.util.find_spec("isal") else []
    return names


@pytest.mark.parametrize("backend", _backends())
def test_every_gzip_library_decodes_and_rejects_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    import importlib
    import zlib

    from trainer.data import gz

    modules = {"zlib": "zlib", "isal": "isal.isal_zlib"}
    lib = importlib.import_module(modules[backend])
    monkeypatch.setattr(gz, "_BACKEND", lib)
    monkeypatch.setattr(gz, "_ERRORS", (lib.error, zlib.error))
    array = np.arange(-500, 500, dtype=np.int16).reshape(10, 100)
    good = tmp_path / "good.gz"
    good.write_bytes(gzip.compress(naive.idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(good), array)
    for name, content, words in MALFORMED:
        if name.endswith(".gz"):
            path = tmp_path / name
            path.write_bytes(content)
            with pytest.raises(DataError, match=re.escape(words)):
                read_idx(path)
