"""The one base of every error ros2_lmd raises on purpose, so a caller (the CLI, a user's script) can
tell "the input or set-up was wrong, and the message says how" from a bug with one `except`.
Every project error also keeps its builtin base (ValueError, LookupError, RuntimeError), so existing
`except ValueError` handlers still catch it. This module imports nothing: every layer may use it."""

from __future__ import annotations


class LMDError(Exception):
    """Base class of the errors ros2_lmd defines (test/packaging/test_package.py checks them all)."""
