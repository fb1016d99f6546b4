"""The 13-byte record: value type, C/Python codec twins, and the live store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r13core._ffi import segment_name
from r13core.config import (
    DEFAULT_FEATURES,
    RECORD_SIZE,
    Config13,
    ConfigStore,
    Feature,
    PyConfigStore,
    field_name,
    fnv1a32,
    native_pack,
    native_unpack,
)
from r13core.errors import InvalidValue, RecordFileError

records = st.builds(
    Config13,
    version=st.just(1),
    registry_hash=st.integers(0, 2**32 - 1),
    feature_flags=st.integers(0, 2**32 - 1),
    terminal_mode=st.integers(0, 2),
    rows=st.integers(0, 255),
    cols=st.integers(0, 255),
    reserved=st.integers(0, 255),
)


def test_defaults_match_the_design() -> None:
    cfg = Config13()
    assert cfg.version == 1
    assert cfg.features == DEFAULT_FEATURES
    assert cfg.has(Feature.PRIVATE_REGISTRY) and cfg.has(Feature.CACHE_ENABLED)
    assert cfg.has(Feature.METRICS) and cfg.has(Feature.LOGGING)
    assert not cfg.has(Feature.DEBUG)
    assert (cfg.rows, cfg.cols) == (24, 80)


def test_layout_is_little_endian_at_the_designed_offsets() -> None:
    cfg = Config13(
        registry_hash=0x11223344, feature_flags=0xA0B0C0D0, terminal_mode=2, rows=40, cols=120
    )
    raw = cfg.to_bytes()
    assert len(raw) == RECORD_SIZE
    assert raw[0] == 1
    assert raw[1:5] == bytes([0x44, 0x33, 0x22, 0x11])
    assert raw[5:9] == bytes([0xD0, 0xC0, 0xB0, 0xA0])
    assert raw[9:13] == bytes([2, 40, 120, 0])


def test_registry_hash_default_is_fnv1a_of_public_url() -> None:
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C  # the published FNV-1a 32 test vector
    url = "http://localhost:4873"
    assert Config13.defaults(url).registry_hash == fnv1a32(url)


@pytest.mark.parametrize(
    "raw",
    [
        bytes([2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 24, 80, 0]),  # version 2
        bytes([0] + [0] * 12),  # version 0
        bytes([1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 24, 80, 0]),  # terminal mode 3
        bytes([1] * 12),  # short
        bytes([1] * 14),  # long
    ],
)
def test_invalid_records_are_refused_by_both_codecs(raw: bytes) -> None:
    with pytest.raises(InvalidValue):
        Config13.from_bytes(raw)
    with pytest.raises(InvalidValue):
        native_unpack(raw)


@given(records)
def test_c_and_python_codecs_agree_on_valid_records(cfg: Config13) -> None:
    assert native_pack(cfg) == cfg.to_bytes()
    assert native_unpack(cfg.to_bytes()) == cfg == Config13.from_bytes(cfg.to_bytes())


@given(st.binary(min_size=13, max_size=13))
def test_c_and_python_codecs_agree_on_random_bytes(raw: bytes) -> None:
    try:
        expected: Config13 | None = Config13.from_bytes(raw)
    except InvalidValue:
        expected = None
    if expected is None:
        with pytest.raises(InvalidValue):
            native_unpack(raw)
    else:
        assert native_unpack(raw) == expected


def test_fields_are_validated_on_construction() -> None:
    with pytest.raises(InvalidValue, match="rows"):
        Config13(rows=256)
    with pytest.raises(InvalidValue, match="terminal_mode"):
        Config13(terminal_mode=3)
    with pytest.raises(InvalidValue, match="registry_hash"):
        Config13(registry_hash=-1)
    with pytest.raises(InvalidValue):
        Config13().with_field("cols", 999)


def test_with_feature_turns_one_flag_on_and_off() -> None:
    cfg = Config13(feature_flags=1 << 31)
    on = cfg.with_feature(Feature.PREMIUM_TYPES, True)
    assert on.has(Feature.PREMIUM_TYPES) and type(on.feature_flags) is int
    off = on.with_feature(Feature.PREMIUM_TYPES, False)
    assert off == cfg


def test_field_names_accept_design_spellings() -> None:
    assert field_name("terminalMode") == "terminal_mode"
    assert field_name("registryHash") == "registry_hash"
    assert field_name("featureFlags") == "feature_flags"
    assert field_name("rows") == "rows"
    with pytest.raises(InvalidValue, match="unknown field"):
        field_name("colour")


def test_feature_parse_is_forgiving_about_case_but_not_names() -> None:
    assert Feature.parse("premium-types") is Feature.PREMIUM_TYPES
    assert Feature.parse("Debug") is Feature.DEBUG
    with pytest.raises(InvalidValue, match="unknown flag"):
        Feature.parse("TURBO")


# -- the live store -------------------------------------------------------------


def test_store_creates_the_file_with_defaults(data_dir: Path) -> None:
    defaults = Config13.defaults("http://r13.example:4873")
    with ConfigStore(data_dir, defaults=defaults) as store:
        assert store.read() == defaults
    assert (data_dir / "config.r13").read_bytes() == defaults.to_bytes()


def test_store_refuses_a_file_of_another_size(data_dir: Path) -> None:
    (data_dir / "config.r13").write_bytes(b"\x01" * 12)
    with pytest.raises(RecordFileError, match="13-byte"):
        ConfigStore(data_dir)
    (data_dir / "config.r13").write_bytes(b"\x01" * 14)
    with pytest.raises(RecordFileError):
        ConfigStore(data_dir)
    assert (data_dir / "config.r13").read_bytes() == b"\x01" * 14  # untouched


def test_store_refuses_a_file_with_an_invalid_record(data_dir: Path) -> None:
    (data_dir / "config.r13").write_bytes(bytes([9] + [0] * 12))
    with pytest.raises(InvalidValue, match="version"):
        ConfigStore(data_dir)


def test_updates_reach_the_file_and_other_handles(data_dir: Path) -> None:
    with ConfigStore(data_dir) as a, ConfigStore(data_dir) as b:
        g0 = a.generation()
        a.set_feature(Feature.DEBUG, True)
        assert b.read().has(Feature.DEBUG)
        a.write_bytes(10, bytes([50, 132]))
        assert (b.read().rows, b.read().cols) == (50, 132)
        a.set_field("terminalMode", 2)
        assert b.generation() == g0 + 3
        assert (data_dir / "config.r13").read_bytes() == b.read_bytes()


def test_read_sees_every_change_of_another_handle_and_decodes_each_record_right(
    data_dir: Path,
) -> None:
    """read() answers from its last decode only while the shared generation stands still."""
    with ConfigStore(data_dir) as a, ConfigStore(data_dir) as b:
        first = b.read()
        assert b.read() is first  # nothing changed: the decoded value again
        for rows in (30, 40, 30, 40):  # records that come back are decoded alike
            a.write_bytes(10, bytes([rows]))
            seen = b.read()
            assert seen.rows == rows
            assert seen == Config13.from_bytes(a.read_bytes())
        a.write_bytes(10, bytes([first.rows]))
        assert b.read() == first
        # A write that changes no byte still moves the generation: a new read.
        g = b.generation()
        a.write_bytes(10, bytes([first.rows]))
        assert b.generation() == g + 1
        assert b.read() == first


def test_invalid_updates_change_nothing(store: ConfigStore, data_dir: Path) -> None:
    before = (store.generation(), store.read_bytes())
    with pytest.raises(InvalidValue, match="version"):
        store.write_bytes(0, b"\x02")
    with pytest.raises(InvalidValue, match="terminal mode"):
        store.write_bytes(9, b"\x07")
    with pytest.raises(InvalidValue):
        store.write_bytes(12, b"\x00\x00")
    with pytest.raises(InvalidValue):
        store.write_bytes(3, b"")
    with pytest.raises(InvalidValue):
        store.set_feature(32, True)
    with pytest.raises(InvalidValue):
        store.replace(b"\x01" * 12)
    assert (store.generation(), store.read_bytes()) == before
    assert (data_dir / "config.r13").read_bytes() == before[1]


def test_reserved_bits_and_byte_are_preserved(store: ConfigStore) -> None:
    store.write_bytes(12, b"\x5a")
    store.set_feature(31, True)
    store.set_feature(Feature.DEBUG, True)
    cfg = store.read()
    assert cfg.reserved == 0x5A
    assert cfg.feature_flags & (1 << 31)
    store.set_feature("debug", False)
    assert store.read().feature_flags & (1 << 31)


def test_a_closed_store_refuses_to_read(data_dir: Path) -> None:
    store = ConfigStore(data_dir)
    store.read()
    store.close()
    with pytest.raises(InvalidValue):
        store.read()


def test_replace_and_generation_grow(store: ConfigStore) -> None:
    g = store.generation()
    new = Config13(registry_hash=7, feature_flags=0, terminal_mode=0, rows=1, cols=2, reserved=3)
    assert store.replace(new) == new
    assert store.read() == new
    assert store.generation() == g + 1


def test_save_keeps_the_change_durable(data_dir: Path) -> None:
    with ConfigStore(data_dir) as store:
        store.set_field("cols", 200)
        store.save()
    assert Config13.from_bytes((data_dir / "config.r13").read_bytes()).cols == 200


def test_two_data_dirs_never_share_a_live_copy(tmp_path: Path) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    with ConfigStore(a_dir) as a, ConfigStore(b_dir) as b:
        a.set_field("rows", 99)
        assert b.read().rows == 24


def test_live_copy_is_rebuilt_from_the_file_when_nobody_has_it(data_dir: Path) -> None:
    with ConfigStore(data_dir) as store:
        store.set_field("rows", 42)
    # Edited while no process had it open (as after a reboot): the file wins.
    raw = bytearray((data_dir / "config.r13").read_bytes())
    raw[10] = 77
    (data_dir / "config.r13").write_bytes(bytes(raw))
    with ConfigStore(data_dir) as store:
        assert store.read().rows == 77


def test_live_copy_survives_while_someone_has_it(data_dir: Path) -> None:
    keeper = ConfigStore(data_dir)
    try:
        with ConfigStore(data_dir) as store:
            store.set_field("rows", 33)
        with ConfigStore(data_dir) as store:
            assert store.read().rows == 33
            assert store.generation() >= 2
    finally:
        keeper.close()


def _segments_of(data_dir: Path) -> set[str]:
    """This data dir's segments in /dev/shm, whoever else has segments there: each name
    carries the dir's random id (csrc/shm.c, kept in <data>/.r13-shm.id)."""
    dir_id = (data_dir / ".r13-shm.id").read_bytes().decode()
    return {n for n in os.listdir("/dev/shm") if n.startswith("r13-") and n.endswith(dir_id)}


def test_last_close_removes_the_shared_segment(tmp_path: Path) -> None:
    d = tmp_path / "solo"
    d.mkdir()
    store = ConfigStore(d)
    assert _segments_of(d) == {segment_name(d, "record").lstrip("/")}
    store.close()
    assert _segments_of(d) == set()


@settings(max_examples=60)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.integers(0, 12), st.binary(min_size=1, max_size=13)),
            st.tuples(st.just("bit"), st.integers(0, 31), st.booleans()),
            st.tuples(st.just("replace"), st.binary(min_size=13, max_size=13)),
        ),
        max_size=20,
    )
)
def test_c_store_and_python_twin_agree_on_update_sequences(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as c_dir, tempfile.TemporaryDirectory() as py_dir:
        c, py = ConfigStore(c_dir), PyConfigStore(py_dir)
        try:
            for op in ops:
                outcomes: list[object] = []
                for target in (c, py):
                    try:
                        if op[0] == "write":
                            offset, data = op[1], op[2]
                            assert isinstance(offset, int) and isinstance(data, bytes)
                            outcomes.append(target.write_bytes(offset, data))
                        elif op[0] == "bit":
                            bit, on = op[1], op[2]
                            assert isinstance(bit, int) and isinstance(on, bool)
                            outcomes.append(target.set_feature(bit, on))
                        else:
                            data = op[1]
                            assert isinstance(data, bytes)
                            outcomes.append(target.replace(data))
                    except InvalidValue:
                        outcomes.append("refused")
                assert outcomes[0] == outcomes[1]
                assert c.read_bytes() == py.read_bytes()
            assert Path(c_dir, "config.r13").read_bytes() == Path(py_dir, "config.r13").read_bytes()
        finally:
            c.close()
            py.close()
