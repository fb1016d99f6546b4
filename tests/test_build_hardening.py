"""The C core is built hardened: stack canaries and glibc's checked string functions."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from r13core import _ffi

ROOT = Path(__file__).resolve().parent.parent


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("r13_build_native", ROOT / "csrc/build_native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_c_core_is_compiled_with_stack_protector_and_fortify() -> None:
    args = list(_build_script().COMPILE_ARGS)
    assert "-fstack-protector-strong" in args
    assert "-D_FORTIFY_SOURCE=2" in args
    # FORTIFY does nothing without optimisation; a later -U would undo it.
    assert "-O2" in args
    assert args.index("-U_FORTIFY_SOURCE") < args.index("-D_FORTIFY_SOURCE=2")


def test_built_module_calls_the_canary_and_checked_functions() -> None:
    # The dynamic symbol table of the .so that is loaded names what it imports:
    # __stack_chk_fail (canaries) and __*_chk (FORTIFY's checked variants).
    so = Path(str(_ffi._native.__file__))
    data = so.read_bytes()
    assert b"\x00__stack_chk_fail\x00" in data
    checked = set(re.findall(rb"\x00(__[a-z_]+_chk)\x00", data)) - {b"__stack_chk"}
    assert checked, f"no FORTIFY_SOURCE symbols in {so.name}"
