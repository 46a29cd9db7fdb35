"""Control switches end to end against the simulated cluster: only with control allowed and only for the
writable pack, state read back from the BMS, the physics reacting to the charge MOSFET, refusals translated."""

from datetime import timedelta
from unittest.mock import patch

import pytest
from homeassistant.components.switch.const import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON, STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL, DOMAIN

from .common import setup_entry

CONTROL = {CONF_ALLOW_CONTROL: True}
CHARGE_MOS = "switch.pack_1_charge_mosfet"
DISCHARGE_MOS = "switch.pack_1_discharge_mosfet"
BUZZER = "switch.pack_1_buzzer"


async def poll(hass: HomeAssistant) -> None:
    """One coordinator poll (default interval 10 s)."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done(wait_background_tasks=True)


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def switch(hass: HomeAssistant, entity_id: str, on: bool) -> None:
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_ON if on else SERVICE_TURN_OFF, {ATTR_ENTITY_ID: entity_id}, blocking=True
    )


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion, simulator: Simulator
) -> None:
    """2-pack RS232-master cluster: five switches, all on pack 1 (the only writable pack)."""
    with patch("custom_components.lfp_bms.PLATFORMS", [Platform.SWITCH]):
        entry = await setup_entry(hass, simulator, CONTROL)
    entries = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert len(entries) == 5
    assert {e.device_id for e in entries} == {entries[0].device_id}
    assert all(e.entity_id.startswith("switch.pack_1_") for e in entries)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


async def test_no_control_entities_without_the_option(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, simulator: Simulator
) -> None:
    """Control off (the default): no switch, select, number, button or clock sensor exists."""
    entry = await setup_entry(hass, simulator)
    domains = {e.domain for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)}
    assert domains.isdisjoint({"switch", "select", "number", "button"})
    assert not [
        e for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id) if "bms_clock" in e.unique_id
    ]
    assert hass.services.has_service(DOMAIN, "write_parameters")  # registered in async_setup, refuses (services)


@pytest.mark.parametrize("simulator", [{"profile": ConstantProfile(20.0)}], indirect=True)
async def test_charge_mosfet_off_stops_charging(hass: HomeAssistant, simulator: Simulator) -> None:
    """Charge MOSFET off: the switch shows the BMS's read-back and pack 1 stops taking charge current."""
    simulator.advance(30)
    await setup_entry(hass, simulator, CONTROL)
    assert state_of(hass, CHARGE_MOS) == STATE_ON
    assert float(state_of(hass, "sensor.pack_1_current")) > 5

    await switch(hass, CHARGE_MOS, False)
    assert state_of(hass, CHARGE_MOS) == STATE_OFF
    assert state_of(hass, "binary_sensor.pack_1_charge_mosfet") == STATE_OFF  # the same read-back status
    assert simulator.cluster.pack(1).charge_mos_command_on is False
    simulator.advance(30)
    await poll(hass)
    assert float(state_of(hass, "sensor.pack_1_current")) == 0.0
    assert float(state_of(hass, "sensor.pack_2_current")) > 5  # the charger's current goes to pack 2

    await switch(hass, CHARGE_MOS, True)
    simulator.advance(30)
    await poll(hass)
    assert state_of(hass, CHARGE_MOS) == STATE_ON
    assert float(state_of(hass, "sensor.pack_1_current")) > 5


async def test_both_mosfets_off_is_refused(hass: HomeAssistant, simulator: Simulator) -> None:
    """The BMS refuses to open both MOSFETs: a translated error, and the switch keeps showing on."""
    await setup_entry(hass, simulator, CONTROL)
    await switch(hass, DISCHARGE_MOS, False)
    assert state_of(hass, DISCHARGE_MOS) == STATE_OFF
    with pytest.raises(HomeAssistantError) as refused:
        await switch(hass, CHARGE_MOS, False)
    assert refused.value.translation_key == "refused_both_mosfets_off"
    assert refused.value.translation_placeholders == {"address": "1", "rtn": "0x09"}
    assert "the BMS never switches both MOSFETs off" in str(refused.value)
    assert state_of(hass, CHARGE_MOS) == STATE_ON
    assert simulator.cluster.pack(1).charge_mos_command_on is True


async def test_buzzer_switch_follows_the_control_byte(hass: HomeAssistant, simulator: Simulator) -> None:
    """Buzzer on/off through 0x99; the state is the bit the BMS replies with."""
    await setup_entry(hass, simulator, CONTROL)
    assert state_of(hass, BUZZER) == STATE_OFF
    await switch(hass, BUZZER, True)
    assert state_of(hass, BUZZER) == STATE_ON
    assert simulator.cluster.pack(1).buzzer_enabled is True
    await switch(hass, BUZZER, False)
    assert state_of(hass, BUZZER) == STATE_OFF
    assert simulator.cluster.pack(1).buzzer_enabled is False


async def test_disagreeing_read_back_shows_the_bms_state(
    hass: HomeAssistant, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 0x99 reply without the LED bit: a translated error, and the switch then shows what the pack's status
    (re-read at once) reports — here on, because the pack did switch and only its reply disagreed."""
    from custom_components.lfp_bms.bms.simulator import responders

    await setup_entry(hass, simulator, CONTROL)
    monkeypatch.setattr(responders, "control_byte", lambda pack: 0x00)
    with pytest.raises(HomeAssistantError) as mismatch:
        await switch(hass, "switch.pack_1_led_alarm", True)
    assert mismatch.value.translation_key == "readback_mismatch"
    await hass.async_block_till_done()
    assert simulator.cluster.pack(1).led_alarm_enabled is True
    assert state_of(hass, "switch.pack_1_led_alarm") == STATE_ON
