"""Fixtures of the dashboard's browser tests (tests/fixtures/dashboard.py)."""

from tests.fixtures.dashboard import browser, open_page, page, product

__all__ = ["browser", "open_page", "page", "product"]
