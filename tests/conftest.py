"""Shared test configuration: nothing here starts services (see tests/integration)."""
