"""Helpers the tests share (importable as `support.*`: test/conftest.py puts test/ on the path)."""
