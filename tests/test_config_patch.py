"""The record's patch (several edits as one change, r13_record_patch) against its oracle."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from r13core.config import (
    RECORD_SIZE,
    Config13,
    ConfigStore,
    PyConfigStore,
    apply_patch,
)
from r13core.errors import InvalidValue

thirteen = st.binary(min_size=RECORD_SIZE, max_size=RECORD_SIZE)
# Values that make a valid record whatever the mask (version 1, terminalMode 0..2), so
# most examples change the record; `thirteen` alone would be refused nearly always.
valid_values = st.builds(
    lambda middle, mode, tail: b"\x01" + middle + bytes([mode]) + tail,
    st.binary(min_size=8, max_size=8),
    st.integers(0, 2),
    st.binary(min_size=3, max_size=3),
)


@given(mask=thirteen, values=st.one_of(valid_values, thirteen))
def test_patch_matches_the_oracle_in_c_and_python(
    tmp_path_factory: pytest.TempPathFactory, mask: bytes, values: bytes
) -> None:
    c_dir, py_dir = tmp_path_factory.mktemp("c"), tmp_path_factory.mktemp("py")
    c_store, py_store = ConfigStore(c_dir), PyConfigStore(py_dir)
    try:
        before = c_store.read_bytes()
        generation = c_store.generation()
        expected = apply_patch(before, mask, values)
        try:
            Config13.from_bytes(expected)
        except InvalidValue:
            # Not a record: refused by both, nothing changes.
            with pytest.raises(InvalidValue):
                c_store.patch(mask, values)
            with pytest.raises(InvalidValue):
                py_store.patch(mask, values)
            assert c_store.read_bytes() == before and c_store.generation() == generation
            return
        assert c_store.patch(mask, values).to_bytes() == expected
        assert py_store.patch(mask, values).to_bytes() == expected
        assert c_store.generation() == generation + 1  # one change, however many bits
        assert (c_dir / "config.r13").read_bytes() == expected
    finally:
        c_store.close()
        py_store.close()


def test_patch_needs_thirteen_bytes_of_each(store: ConfigStore) -> None:
    with pytest.raises(InvalidValue):
        store.patch(b"\xff" * 12, bytes(13))
    with pytest.raises(InvalidValue):
        apply_patch(bytes(13), bytes(13), bytes(14))


def test_patch_keeps_the_bits_outside_the_mask(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    try:
        store.set_field("cols", 99)
        mask = bytearray(RECORD_SIZE)
        values = bytearray(RECORD_SIZE)
        mask[10], values[10], values[11] = 0xFF, 50, 7  # rows in the mask, cols not
        after = store.patch(bytes(mask), bytes(values))
        assert (after.rows, after.cols) == (50, 99)
    finally:
        store.close()
