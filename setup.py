# All metadata lives in pyproject.toml; this file only names the cffi build and the
# dashboard's build step.
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_dashboard(build_py):
    """Copy the dashboard's npm libraries into app/static/ first (dashboard/vendor.py)."""

    def run(self) -> None:
        here = Path(__file__).resolve().parent
        sys.path.insert(0, str(here / "dashboard"))
        try:
            import vendor  # dashboard/vendor.py

            vendor.build(here)
        finally:
            sys.path.pop(0)
        super().run()


setup(
    cffi_modules=["csrc/build_native.py:ffibuilder"],
    cmdclass={"build_py": build_py_with_dashboard},
    # The C core uses only the stable ABI: one wheel (cp311-abi3) for Python 3.11 and later.
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
