# All metadata lives in pyproject.toml; this file only names the cffi build.
from setuptools import setup

setup(cffi_modules=["csrc/build_native.py:ffibuilder"])
