"""PACE Modbus and Seplos V3 end to end in Home Assistant: the config flow detects a simulated bus, the entry sets
up every pack with its sensors and energy, and PACE Modbus parameter numbers write and read back."""

from datetime import timedelta
from typing import Any

import pytest
from homeassistant.components.number import ATTR_VALUE
from homeassistant.components.number import DOMAIN as NUMBER_DOMAIN
from homeassistant.components.number.const import SERVICE_SET_VALUE
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.lfp_bms.bms import detect as detect_module
from custom_components.lfp_bms.bms.driver import ProtocolName
from custom_components.lfp_bms.bms.modbus import detect as modbus_detect
from custom_components.lfp_bms.bms.modbus.codec import FunctionCode
from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL, CONF_DEVICE, DOMAIN

from .test_config_flow import create, detect_then_confirm

PACE_MODBUS_8 = {"protocol": ProtocolName.PACE_MODBUS, "packs": 8}
SEPLOS_V3_4 = {"protocol": ProtocolName.SEPLOS_V3, "packs": 4}


@pytest.fixture(autouse=True)
def _short_probe_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unpaced simulator answers at once: the probes nobody answers need only a short wait."""
    for module in (detect_module, modbus_detect):
        monkeypatch.setattr(module, "PROBE_TIMEOUT", 0.1)
        monkeypatch.setattr(module, "SCAN_TIMEOUT", 0.1)


async def poll(hass: HomeAssistant, seconds: float = 11) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done(wait_background_tasks=True)


def value(hass: HomeAssistant, entity_id: str) -> float:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return float(state.state)


async def flow_setup(hass: HomeAssistant, sim: Simulator, options: dict[str, Any] | None = None) -> Any:
    """User flow through detection and confirm; the created entry set up for real (with `options`)."""
    confirm = await detect_then_confirm(hass, sim)
    placeholders = confirm["description_placeholders"]
    assert placeholders is not None
    result = await create(hass, confirm)
    await hass.async_block_till_done()
    entry = result["result"]
    if options:
        hass.config_entries.async_update_entry(entry, options=options)
        await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return placeholders, entry


def pack_entities(hass: HomeAssistant, entry_id: str) -> dict[str, list[str]]:
    """Entity ids of the entry by platform."""
    by_platform: dict[str, list[str]] = {}
    for entity in er.async_entries_for_config_entry(er.async_get(hass), entry_id):
        by_platform.setdefault(entity.domain, []).append(entity.entity_id)
    return by_platform


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("simulator", [PACE_MODBUS_8], indirect=True)
async def test_pace_modbus_bus_of_eight_through_the_flow(hass: HomeAssistant, simulator: Simulator) -> None:
    """Detected as PACE Modbus with slave ids 1-8; every pack's sensors show the simulated BMS; energy counts."""
    placeholders, entry = await flow_setup(hass, simulator)
    assert placeholders["protocol"] == "PACE Modbus"
    assert placeholders["packs"] == "8"
    assert placeholders["addresses"] == "1, 2, 3, 4, 5, 6, 7, 8"
    assert placeholders["reading"] == "bus"  # every pack answers for itself
    assert entry.data[CONF_DEVICE] == simulator.url
    assert entry.data["protocol"] == "pace_modbus"
    simulator.cluster.profile = ConstantProfile(-20.0)
    simulator.advance(600)
    await poll(hass)
    for address in range(1, 9):
        truth = simulator.cluster.pack(address).analog()
        prefix = f"sensor.pack_{address}"
        assert value(hass, f"{prefix}_voltage") == pytest.approx(truth.voltage_v, abs=0.01)
        assert value(hass, f"{prefix}_current") == pytest.approx(truth.current_a, abs=0.01)
        assert value(hass, f"{prefix}_battery") == round(truth.soc_pct)  # SOC register, whole percent
        for cell, mv in enumerate(truth.cell_voltages_mv, start=1):
            assert value(hass, f"{prefix}_cell_{cell}_voltage") == pytest.approx(mv / 1000, abs=0.0005)
        state = hass.states.get(f"{prefix}_operating_state")
        assert state is not None
        assert state.state == "discharging"
    # Energy: the integrators run on the Modbus readings like on any other link.
    simulator.advance(600)
    await poll(hass)
    simulator.advance(600)
    await poll(hass)
    discharged = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.unique_id}_energy_discharged")
    assert discharged is not None
    assert value(hass, discharged) > 0
    entities = pack_entities(hass, entry.entry_id)
    # No control entities without "Allow control"; sensors and binary sensors for every pack.
    assert "number" not in entities
    assert "switch" not in entities
    assert all(any(e.startswith(f"sensor.pack_{a}_") for e in entities["sensor"]) for a in range(1, 9))
    assert all(any(e.startswith(f"binary_sensor.pack_{a}_") for e in entities["binary_sensor"]) for a in range(1, 9))


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("simulator", [SEPLOS_V3_4], indirect=True)
async def test_seplos_v3_bus_of_four_through_the_flow(hass: HomeAssistant, simulator: Simulator) -> None:
    """Detected as Seplos V3 with slave ids 0-3 by its factory name; sensors, SOC as sent, energy; read-only."""
    placeholders, entry = await flow_setup(hass, simulator, {CONF_ALLOW_CONTROL: True})
    assert placeholders["protocol"] == "Seplos V3"
    assert placeholders["addresses"] == "0, 1, 2, 3"
    assert placeholders["model"].startswith("SG16S")
    simulator.cluster.profile = ConstantProfile(25.0)
    for _ in range(3):
        simulator.advance(600)
        await poll(hass)
    for address in range(4):
        pack = simulator.cluster.pack(address)
        assert value(hass, f"sensor.pack_{address}_voltage") == pytest.approx(pack.analog().voltage_v, abs=0.01)
        assert value(hass, f"sensor.pack_{address}_battery") == pytest.approx(pack.soc_pct, abs=0.1)
    charged = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry.unique_id}_energy_charged")
    assert charged is not None
    assert value(hass, charged) > 0
    entities = pack_entities(hass, entry.entry_id)
    # Read-only even with "Allow control": no number, switch, select or button for a Seplos V3 pack.
    assert not {"number", "switch", "select", "button"} & set(entities)
    assert entry.runtime_data.data.cluster.system is not None
    assert entry.runtime_data.data.cluster.system.pack_count == 4


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize("simulator", [{"protocol": ProtocolName.PACE_MODBUS, "packs": 3}], indirect=True)
async def test_pace_modbus_parameter_numbers_write_and_read_back(hass: HomeAssistant, simulator: Simulator) -> None:
    """With "Allow control" every pack on the bus gets the parameter numbers of registers 60-112 (no MOSFET
    switches: the map has none); a change is written with FC 0x10 and the number shows what the pack reads back."""
    _, entry = await flow_setup(hass, simulator, {CONF_ALLOW_CONTROL: True})
    entities = pack_entities(hass, entry.entry_id)
    assert "switch" not in entities
    numbers = entities["number"]
    assert {e.split("_")[1] for e in numbers} == {"1", "2", "3"}
    registry = er.async_get(hass)
    target = next(
        e
        for e in numbers
        if e.startswith("number.pack_2_")
        and (reg := registry.async_get(e)) is not None
        and reg.unique_id.endswith("cell_overvoltage_alarm_v")
    )
    assert value(hass, target) == simulator.cluster.pack(2).settings.cell_ov_alarm_mv / 1000
    await hass.services.async_call(
        NUMBER_DOMAIN, SERVICE_SET_VALUE, {ATTR_ENTITY_ID: target, ATTR_VALUE: 3.5}, blocking=True
    )
    assert simulator.cluster.pack(2).settings.cell_ov_alarm_mv == 3500
    assert value(hass, target) == 3.5
    assert any(sent.request[:2] == bytes((2, FunctionCode.WRITE_MULTIPLE_REGISTERS)) for sent in simulator.sent)
    # Out of the documented range: refused before anything is sent.
    writes = sum(1 for sent in simulator.sent if sent.request[1] == FunctionCode.WRITE_MULTIPLE_REGISTERS)
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            NUMBER_DOMAIN, SERVICE_SET_VALUE, {ATTR_ENTITY_ID: target, ATTR_VALUE: 3.9}, blocking=True
        )
    assert writes == sum(1 for sent in simulator.sent if sent.request[1] == FunctionCode.WRITE_MULTIPLE_REGISTERS)
