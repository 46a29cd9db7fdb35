"""Protection-parameter numbers end to end: units/steps/ranges from the field specs, writes read back, the
physics reacting to a lowered limit, and invalid values refused before anything reaches the BMS."""

from datetime import timedelta
from unittest.mock import patch

import pytest
from homeassistant.components.number import ATTR_VALUE
from homeassistant.components.number import DOMAIN as NUMBER_DOMAIN
from homeassistant.components.number.const import SERVICE_SET_VALUE
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.bms.frame import decode_frame
from custom_components.lfp_bms.bms.models import Condition
from custom_components.lfp_bms.bms.pace_params import CellOverVoltage, ProtocolSelection
from custom_components.lfp_bms.bms.simulator import Simulator
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL
from custom_components.lfp_bms.number import PARAMETER_NUMBERS

from .common import setup_entry

CONTROL = {CONF_ALLOW_CONTROL: True}
CELL_OV = "number.pack_1_cell_over_voltage_{}"


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def set_value(hass: HomeAssistant, entity_id: str, value: float) -> None:
    await hass.services.async_call(
        NUMBER_DOMAIN, SERVICE_SET_VALUE, {ATTR_ENTITY_ID: entity_id, ATTR_VALUE: value}, blocking=True
    )


def writes(sim: Simulator, cid2: int) -> int:
    return sum(1 for sent in sim.sent if decode_frame(sent.request).cid2 == cid2)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion, simulator: Simulator
) -> None:
    """Every parameter field of pack 1 (the only writable pack of the 2-pack RS232-master cluster)."""
    with patch("custom_components.lfp_bms.PLATFORMS", [Platform.NUMBER]):
        entry = await setup_entry(hass, simulator, CONTROL)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


async def test_every_field_is_a_disabled_config_number(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, simulator: Simulator
) -> None:
    """One number per settable field of every group but the protocol codes, disabled, config, on pack 1 only."""
    expected = sum(len(g.specs) for g in {d.group for d in PARAMETER_NUMBERS})
    assert ProtocolSelection not in {d.group for d in PARAMETER_NUMBERS}
    entry = await setup_entry(hass, simulator, CONTROL)
    numbers = [e for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id) if e.domain == "number"]
    assert len(numbers) == expected == len(PARAMETER_NUMBERS)
    assert all(e.disabled_by is er.RegistryEntryDisabler.INTEGRATION for e in numbers)
    assert all(e.entity_category is not None and e.entity_category.value == "config" for e in numbers)
    assert all(e.entity_id.startswith("number.pack_1_") for e in numbers)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_number_shows_spec_and_bms_value(hass: HomeAssistant, simulator: Simulator) -> None:
    """Cell OV protection: 3.70 V from the pack (tests/data/captures.md §A.4), 2.5-4.5 V in 10 mV steps
    (docs/protocol.md §1.9.12)."""
    await setup_entry(hass, simulator, CONTROL)
    state = hass.states.get(CELL_OV.format("protection"))
    assert state is not None
    assert float(state.state) == pytest.approx(3.7)
    assert state.attributes["min"] == 2.5
    assert state.attributes["max"] == 4.5
    assert state.attributes["step"] == 0.01
    assert state.attributes["unit_of_measurement"] == "V"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_lowered_cell_ov_limit_raises_the_protection(hass: HomeAssistant, simulator: Simulator) -> None:
    """Lower release, alarm and protection below the cells' voltage (each write valid on its own): the
    simulated BMS trips its cell over-voltage protection and the binary sensors report it."""
    await setup_entry(hass, simulator, CONTROL)
    highest_v = max(simulator.cluster.pack(1).cell_mv) / 1000
    assert 3.0 < highest_v < 3.4
    for field, value in (("release", 2.9), ("alarm", 3.0), ("protection", 3.1)):
        await set_value(hass, CELL_OV.format(field), value)
        assert float(state_of(hass, CELL_OV.format(field))) == pytest.approx(value)
    settings = simulator.cluster.pack(1).settings
    assert (settings.cell_ov_release_mv, settings.cell_ov_alarm_mv, settings.cell_ov_protect_mv) == (2900, 3000, 3100)

    simulator.advance(10)
    assert Condition.CELL_OVERVOLTAGE in simulator.cluster.pack(1).protections
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert state_of(hass, "binary_sensor.pack_1_cell_over_voltage_protection_ovp") == STATE_ON
    assert state_of(hass, "binary_sensor.pack_2_cell_over_voltage_protection_ovp") == STATE_OFF


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(
    ("field", "value", "translation_key", "placeholders"),
    [
        ("protection", 4.6, None, None),  # above the documented 4.5 V: HA's own range check
        (
            "protection",
            3.5,  # below the 3.60 V alarm
            "parameter_must_be_above",
            {
                "field": "Cell over-voltage protection",
                "value": "3.5 V",
                "other": "Cell over-voltage alarm",
                "other_value": "3.6 V",
            },
        ),
        (
            "alarm",
            3.555,  # off the 10 mV step
            "parameter_off_step",
            {"field": "Cell over-voltage alarm", "value": "3.555 V", "step": "0.01 V", "minimum": "2.5 V"},
        ),
        (
            "release",
            3.65,  # release above the alarm
            "parameter_must_be_at_most",
            {
                "field": "Cell over-voltage release",
                "value": "3.65 V",
                "other": "Cell over-voltage alarm",
                "other_value": "3.6 V",
            },
        ),
    ],
)
async def test_invalid_value_never_reaches_the_bms(
    hass: HomeAssistant,
    simulator: Simulator,
    field: str,
    value: float,
    translation_key: str | None,
    placeholders: dict[str, str] | None,
) -> None:
    """Range, step and order errors are ServiceValidationErrors in words and units, naming the fields as their
    entities are named; no 0xD0 write is sent and nothing changes."""
    await setup_entry(hass, simulator, CONTROL)
    before = simulator.cluster.pack(1).settings
    with pytest.raises(ServiceValidationError) as invalid:
        await set_value(hass, CELL_OV.format(field), value)
    if translation_key is not None:
        assert invalid.value.translation_key == translation_key
        assert invalid.value.translation_placeholders == placeholders
        assert str(invalid.value).endswith("Nothing was sent to the battery")
    if translation_key == "parameter_must_be_above":
        # The example, as a homeowner reads it (English).
        assert str(invalid.value) == (
            '"Cell over-voltage protection" (3.5 V) must be above "Cell over-voltage alarm" (3.6 V). '
            "Nothing was sent to the battery"
        )
    assert writes(simulator, CellOverVoltage.write_cid2) == 0
    assert simulator.cluster.pack(1).settings == before
    assert float(state_of(hass, CELL_OV.format("protection"))) == pytest.approx(3.7)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
@pytest.mark.parametrize(("value", "translation_key"), [(float("nan"), "parameter_not_finite"), (float("inf"), None)])
async def test_set_value_not_finite(
    hass: HomeAssistant, simulator: Simulator, value: float, translation_key: str | None
) -> None:
    """Issue 17: NaN passed HA's range check and reached the library (ValueError). Now a translated validation
    error; ∞ is already caught by HA's range check. Nothing is sent either way."""
    await setup_entry(hass, simulator, CONTROL)
    simulator.sent.clear()
    with pytest.raises(ServiceValidationError) as invalid:
        await set_value(hass, CELL_OV.format("alarm"), value)
    if translation_key is not None:
        assert invalid.value.translation_key == translation_key
        assert "Nothing was sent to the battery" in str(invalid.value)
    assert not simulator.sent
