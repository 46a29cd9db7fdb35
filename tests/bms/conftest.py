"""Library tests run without Home Assistant, but the PHCC pytest plugin is loaded for the whole session and
disables sockets for every test; the library's transport and simulator tests talk TCP on 127.0.0.1."""

import pytest


@pytest.fixture(autouse=True)
def _enable_sockets(socket_enabled: None) -> None:
    """Allow loopback sockets in every library test."""


@pytest.fixture
def auto_enable_custom_integrations() -> None:
    """The library tests need no Home Assistant instance: override the HA tests' autouse fixture."""
