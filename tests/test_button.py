"""Control buttons and the BMS clock sensors: sync the clock, re-read parameters, shut down."""

from dataclasses import replace
from unittest.mock import patch

import pytest
from homeassistant.components.button.const import DOMAIN as BUTTON_DOMAIN
from homeassistant.components.button.const import SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.bms.pace import Cid2
from custom_components.lfp_bms.bms.simulator import Simulator
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL

from .common import setup_entry

CONTROL = {CONF_ALLOW_CONTROL: True}
CLOCK = "sensor.pack_1_bms_clock"
DRIFT = "sensor.pack_1_bms_clock_drift"


async def press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call(BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: entity_id}, blocking=True)


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion, simulator: Simulator
) -> None:
    """Three buttons on pack 1 of a 2-pack RS232-master cluster."""
    with patch("custom_components.lfp_bms.PLATFORMS", [Platform.BUTTON]):
        entry = await setup_entry(hass, simulator, CONTROL)
    assert len(er.async_entries_for_config_entry(entity_registry, entry.entry_id)) == 3
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


async def test_shutdown_is_disabled_by_default(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, simulator: Simulator
) -> None:
    """Powering a pack down is never one click away unless the user enables the button."""
    await setup_entry(hass, simulator, CONTROL)
    shutdown = entity_registry.async_get("button.pack_1_shut_down")
    assert shutdown is not None
    assert shutdown.disabled_by is er.RegistryEntryDisabler.INTEGRATION


async def test_clock_sensors_and_sync(hass: HomeAssistant, simulator: Simulator) -> None:
    """The BMS clock starts where the simulator put it (2025-06-01), far off; syncing sets it to HA's time."""
    await setup_entry(hass, simulator, CONTROL)
    bms_time = simulator.cluster.pack(1).clock(simulator.cluster.time_s)
    assert dt_util.parse_datetime(state_of(hass, CLOCK)) == bms_time.replace(tzinfo=dt_util.get_default_time_zone())
    assert abs(float(state_of(hass, DRIFT))) > 86400

    await press(hass, "button.pack_1_set_bms_clock_to_home_assistant_time")
    bms_time = simulator.cluster.pack(1).clock(simulator.cluster.time_s)
    assert abs((bms_time - dt_util.now().replace(tzinfo=None)).total_seconds()) < 5
    assert abs(float(state_of(hass, DRIFT))) < 5
    assert hass.states.get("sensor.pack_2_bms_clock") is None  # not writable, not read


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_reread_parameters_and_shutdown(hass: HomeAssistant, simulator: Simulator) -> None:
    """Re-read picks up a change made on the pack itself (e.g. by PbmsTools); shutdown sends 0x9C 01."""
    await setup_entry(hass, simulator, CONTROL)
    pack = simulator.cluster.pack(1)
    pack.apply_settings(replace(pack.settings, charge_oc_alarm_a=90))
    assert float(state_of(hass, "number.pack_1_charge_over_current_alarm")) == 104
    await press(hass, "button.pack_1_re_read_parameters")
    assert float(state_of(hass, "number.pack_1_charge_over_current_alarm")) == 90

    await press(hass, "button.pack_1_shut_down")
    shutdowns = [s for s in simulator.sent if s.request[7:9] == f"{Cid2.SHUTDOWN:02X}".encode()]
    assert len(shutdowns) == 1
    assert pack.reboot_until > simulator.cluster.time_s
