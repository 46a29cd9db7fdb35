"""Control selects: charge-limiter gear and inverter protocol selection, unknown codes shown as they are."""

from dataclasses import replace
from unittest.mock import patch

import pytest
from homeassistant.components.select import ATTR_OPTION, SERVICE_SELECT_OPTION
from homeassistant.components.select import DOMAIN as SELECT_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.bms.pace_params import CAN_PROTOCOLS, RS485_PROTOCOLS
from custom_components.lfp_bms.bms.simulator import Simulator
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL

from .common import setup_entry

CONTROL = {CONF_ALLOW_CONTROL: True}
GEAR = "select.pack_1_charge_limiter_gear"
CAN = "select.pack_1_inverter_can_protocol"
RS485 = "select.pack_1_inverter_rs485_protocol"
TYPE = "select.pack_1_inverter_protocol_selection"


async def select(hass: HomeAssistant, entity_id: str, option: str) -> None:
    await hass.services.async_call(
        SELECT_DOMAIN, SERVICE_SELECT_OPTION, {ATTR_ENTITY_ID: entity_id, ATTR_OPTION: option}, blocking=True
    )


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion, simulator: Simulator
) -> None:
    """Four selects on pack 1 of a 2-pack RS232-master cluster."""
    with patch("custom_components.lfp_bms.PLATFORMS", [Platform.SELECT]):
        entry = await setup_entry(hass, simulator, CONTROL)
    assert len(er.async_entries_for_config_entry(entity_registry, entry.entry_id)) == 4
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


async def test_limiter_gear(hass: HomeAssistant, simulator: Simulator) -> None:
    """High → low → high through 0x99; the state is the control-byte bit."""
    await setup_entry(hass, simulator, CONTROL)
    assert state_of(hass, GEAR) == "high"
    await select(hass, GEAR, "low")
    assert state_of(hass, GEAR) == "low"
    assert simulator.cluster.pack(1).limiter_low_gear is True
    await select(hass, GEAR, "high")
    assert simulator.cluster.pack(1).limiter_low_gear is False


async def test_protocols_from_the_enumerations(hass: HomeAssistant, simulator: Simulator) -> None:
    """The pack's captured codes CAN 0x13 Afore, RS485 0x14 RONGKE, type Auto (docs/protocol.md §1.9.12); change
    CAN to Pylon."""
    await setup_entry(hass, simulator, CONTROL)
    assert state_of(hass, CAN) == "Afore"
    assert state_of(hass, RS485) == "RONGKE"
    assert state_of(hass, TYPE) == "auto"
    await select(hass, CAN, "Pylon")
    assert state_of(hass, CAN) == "Pylon"
    settings = simulator.cluster.pack(1).settings
    assert (settings.can_protocol, settings.rs485_protocol, settings.protocol_type) == (0x01, 0x14, 0x00)
    await select(hass, TYPE, "manual")
    assert simulator.cluster.pack(1).settings.protocol_type == 0x01


async def test_unknown_code_is_shown_not_hidden(hass: HomeAssistant, simulator: Simulator) -> None:
    """An RS485 code missing from the table appears as `unknown_0x2A`, among the options; it can be left."""
    pack = simulator.cluster.pack(1)
    pack.apply_settings(replace(pack.settings, rs485_protocol=0x2A))
    assert 0x2A not in RS485_PROTOCOLS
    await setup_entry(hass, simulator, CONTROL)
    state = hass.states.get(RS485)
    assert state is not None
    assert state.state == "unknown_0x2A"
    assert state.attributes["options"] == [*RS485_PROTOCOLS.values(), "unknown_0x2A"]
    await select(hass, CAN, "Victron")  # another byte of the group: the unknown code is written back unchanged
    assert pack.settings.rs485_protocol == 0x2A
    assert pack.settings.can_protocol == next(c for c, n in CAN_PROTOCOLS.items() if n == "Victron")
    await select(hass, RS485, "Pylon")
    state = hass.states.get(RS485)
    assert state is not None
    assert state.state == "Pylon"
    assert "unknown_0x2A" not in state.attributes["options"]


async def test_option_outside_the_list_is_refused(hass: HomeAssistant, simulator: Simulator) -> None:
    """HA's own option check refuses a name the select does not offer."""
    await setup_entry(hass, simulator, CONTROL)
    with pytest.raises(ServiceValidationError):
        await select(hass, CAN, "unknown_0x77")
    assert simulator.cluster.pack(1).settings.can_protocol == 0x13
