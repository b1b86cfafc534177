from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from ftguard.errors import BadInputError
from ftguard.weights import open_checkpoint, parse_header
from ftguard.weights._safetensors import SafetensorsFile


def _raw_file(
    path: Path, header: object, data: bytes = b"", *, raw_header: bytes | None = None
) -> Path:
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def test_reads_what_safetensors_wrote(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([1.5, -2.0], dtype=np.float16)
    save_file({"a": a, "b": b}, str(tmp_path / "m.safetensors"))
    ck = open_checkpoint(tmp_path / "m.safetensors")
    assert sorted(ck.names) == ["a", "b"]
    np.testing.assert_array_equal(ck.raw("a"), a)
    np.testing.assert_array_equal(ck.raw("b"), b)
    ck.close()


def test_bf16_is_decoded_exactly(tmp_path: Path) -> None:
    from ftguard.weights._stats import to_f32_matrix

    values = np.array([1.0, -2.5, 0.15625, 3.0e38], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    n = bits.nbytes
    p = _raw_file(
        tmp_path / "bf.safetensors",
        {"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, n]}},
        bits.tobytes(),
    )
    f = SafetensorsFile(p)
    np.testing.assert_allclose(to_f32_matrix(f.raw("w"), "BF16"), values, rtol=1e-2)
    assert to_f32_matrix(f.raw("w"), "BF16")[0] == 1.0


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            b"\0" * 4,
            "outside the data",
        ),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12"),
        ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "unknown dtype"),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "shape"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, "outside"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, b"\0" * 8, "two integers"),
        ({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "two integers"),
        ({"w": [1, 2]}, b"", "not an object"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlap",
        ),
        ({"__metadata__": {"x": 1}}, b"", "__metadata__"),
        ([1, 2, 3], b"", "not a JSON object"),
    ],
)
def test_bad_headers_are_refused(tmp_path: Path, header: object, data: bytes, message: str) -> None:
    p = _raw_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(BadInputError, match=message):
        SafetensorsFile(p)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    raw = (
        b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
        b' "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'
    )
    p = _raw_file(tmp_path / "dup.safetensors", None, b"\0" * 8, raw_header=raw)
    with pytest.raises(BadInputError, match="duplicate tensor name"):
        SafetensorsFile(p)


def test_truncated_and_oversized_headers(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(BadInputError, match="too short"):
        SafetensorsFile(tmp_path / "short.safetensors")
    (tmp_path / "trunc.safetensors").write_bytes(struct.pack("<Q", 100) + b"{}")
    with pytest.raises(BadInputError, match="truncated"):
        SafetensorsFile(tmp_path / "trunc.safetensors")
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(BadInputError, match="over the"):
        SafetensorsFile(tmp_path / "huge.safetensors")
    _raw_file(tmp_path / "utf.safetensors", None, raw_header=b"\xff\xfe{")
    with pytest.raises(BadInputError, match="invalid safetensors header"):
        SafetensorsFile(tmp_path / "utf.safetensors")


def test_truncated_data_is_refused(tmp_path: Path) -> None:
    save_file({"w": np.zeros((64, 64), np.float32)}, str(tmp_path / "m.safetensors"))
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-100])
    with pytest.raises(BadInputError, match="truncated file"):
        open_checkpoint(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.ckpt"])
def test_pickle_files_are_refused_by_name(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x80\x04anything")
    with pytest.raises(BadInputError, match="pickle-based.*safetensors"):
        open_checkpoint(tmp_path / name)
    with pytest.raises(BadInputError, match="pickle-based"):
        open_checkpoint(tmp_path)  # a folder holding only the pickle file


def test_sharded_index_problems(tmp_path: Path) -> None:
    save_file({"a": np.zeros(2, np.float32)}, str(tmp_path / "s1.safetensors"))
    idx = tmp_path / "model.safetensors.index.json"
    idx.write_text(json.dumps({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}))
    with pytest.raises(BadInputError, match="s2.safetensors is missing"):
        open_checkpoint(tmp_path)
    idx.write_text(json.dumps({"weight_map": {"a": "../evil.safetensors"}}))
    with pytest.raises(BadInputError, match="outside the folder"):
        open_checkpoint(tmp_path)
    idx.write_text(json.dumps({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}}))
    with pytest.raises(BadInputError, match="not in its shard"):
        open_checkpoint(tmp_path)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        open_checkpoint(tmp_path / "nope")
    with pytest.raises(BadInputError, match="no .safetensors"):
        open_checkpoint(tmp_path)


_entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "XX", 3]),
        "shape": st.lists(st.integers(-2, 6), max_size=3) | st.just("x"),
        "data_offsets": st.lists(st.integers(-4, 80), min_size=0, max_size=3),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=5), _entry, max_size=5), st.integers(0, 80))
def test_fuzz_structured_headers(header: dict[str, object], data_len: int) -> None:
    raw = json.dumps(header).encode()
    try:
        tensors = parse_header(raw, data_len)
    except BadInputError:
        return
    spans = sorted((t.begin, t.end) for t in tensors.values() if t.end > t.begin)
    for t in tensors.values():
        assert 0 <= t.begin <= t.end <= data_len
    for (_, e1), (b2, _) in zip(spans, spans[1:], strict=False):
        assert b2 >= e1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    with contextlib.suppress(BadInputError):
        parse_header(raw, 64)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=120))
def test_fuzz_whole_files(tmp_path: Path, blob: bytes) -> None:
    p = tmp_path / "f.safetensors"
    p.write_bytes(blob)
    try:
        f = SafetensorsFile(p)
    except BadInputError:
        return
    for name in f.tensors:
        with contextlib.suppress(BadInputError):
            f.raw(name)
    f.close()
