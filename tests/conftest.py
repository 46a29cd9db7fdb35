"""Fixtures shared by the Home Assistant tests."""

from collections.abc import AsyncGenerator, Generator
from typing import Any
from unittest.mock import patch

import pytest
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load custom_components/lfp_bms in every test."""


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """HA-aware snapshots (PHCC's own override does not take effect: syrupy's wins)."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Enable every entity, including those disabled by default (PHCC no longer ships this, P8)."""
    with patch("homeassistant.helpers.entity.Entity.entity_registry_enabled_default", return_value=True):
        yield


@pytest.fixture
async def simulator(socket_enabled: None, request: pytest.FixtureRequest) -> AsyncGenerator[Simulator]:
    """A simulated cluster on 127.0.0.1 (2 PACE packs unless the test parametrises `simulator` indirectly
    with SimulatorConfig keyword arguments). Physics only moves when the test calls `advance()`."""
    options: dict[str, Any] = {"packs": 2, "speed": 0, "paced": False, "seed": 1}
    options.update(getattr(request, "param", {}))
    sim = Simulator(SimulatorConfig(**options))
    await sim.start()
    yield sim
    await sim.stop()
