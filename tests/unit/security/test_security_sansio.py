"""The security package's public names resolve (its sans-I/O rule is in tests/unit/test_sans_io_guard.py)."""

from __future__ import annotations


def test_package_reexports() -> None:
    import rustyray.security as sec

    for name in sec.__all__:
        assert getattr(sec, name) is not None
