"""Diagnostics of a config entry and of one pack: content, redaction, snapshot."""

import json
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from custom_components.lfp_bms.bms.simulator import Simulator
from custom_components.lfp_bms.const import DOMAIN
from custom_components.lfp_bms.entity import device_base

from .common import setup_entry


async def test_entry_diagnostics(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, simulator: Simulator, snapshot: SnapshotAssertion
) -> None:
    """The entry's diagnostics hold the link counters, the last frames, the decoded cluster and the energy totals,
    and neither the link URL nor any serial."""
    entry = await setup_entry(hass, simulator)
    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    # refresh_s is how long detection took on this machine.
    assert diagnostics == snapshot(exclude=props("refresh_s"))
    text = json.dumps(diagnostics)
    serials = {p.pack_serial.strip() for p in simulator.cluster.packs} | {
        p.bms_serial.strip() for p in simulator.cluster.packs
    }
    for secret in {simulator.url, str(simulator.port), *serials}:
        assert secret not in text
    # Nor spelled as the hex ASCII of an identity reply.
    for serial in serials:
        assert serial.encode().hex().upper() not in text.upper()
    assert diagnostics["entry"]["data"]["device"] == "**REDACTED**"
    assert diagnostics["entry"]["unique_id"] == "**REDACTED**"
    # The counters are the link's own: one good frame per request so far (no faults).
    stats = diagnostics["link"]["stats"]
    assert stats["requests"] == stats["good_frames"] > 0
    assert diagnostics["coordinator"]["last_update_success"] is True


async def test_pack_device_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    device_registry: dr.DeviceRegistry,
    simulator: Simulator,
    snapshot: SnapshotAssertion,
) -> None:
    """A pack device's diagnostics: that pack's reading, its identity without serials, its energy."""
    entry = await setup_entry(hass, simulator)
    device = device_registry.async_get_device_by_identifier((DOMAIN, f"{device_base(entry)}_1"), entry.entry_id)
    assert device is not None
    diagnostics: dict[str, Any] = await get_diagnostics_for_device(hass, hass_client, entry, device)
    assert diagnostics == snapshot
    assert diagnostics["address"] == 1
    assert diagnostics["online"] is True
    pack = simulator.cluster.pack(1)
    reading = diagnostics["reading"]
    assert reading["analog"]["cell_voltages_mv"] == list(pack.cell_mv)
    assert pack.pack_serial.strip() not in json.dumps(diagnostics)

    hub = device_registry.async_get_device_by_identifier((DOMAIN, device_base(entry)), entry.entry_id)
    assert hub is not None
    hub_diagnostics: dict[str, Any] = await get_diagnostics_for_device(hass, hass_client, entry, hub)
    assert hub_diagnostics["summary"]["packs_online"] == 2
