# All metadata lives in pyproject.toml; this file only names the cffi build.
from setuptools import setup

setup(
    cffi_modules=["csrc/build_native.py:ffibuilder"],
    # The C core uses only the stable ABI: one wheel (cp311-abi3) for Python 3.11 and later.
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
