"""Control entities, services and diagnostics at their edges: a link that cannot be controlled, a write on a dead
link, a pack that misses a poll, settings not read yet, targets that are not packs, and what diagnostics show."""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from homeassistant.components.select import ATTR_OPTION, SERVICE_SELECT_OPTION
from homeassistant.components.select import DOMAIN as SELECT_DOMAIN
from homeassistant.components.switch.const import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import async_get_platforms
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.models import Condition
from custom_components.lfp_bms.bms.pace import Cid2
from custom_components.lfp_bms.bms.pace_params import ProtocolSelection
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL, CONF_LINK, DOMAIN, LINK_CAN
from custom_components.lfp_bms.control_entity import update_pack_status
from custom_components.lfp_bms.entity import device_base, pack_identifier
from custom_components.lfp_bms.select import ProtocolSelect

from .common import entry_for, setup_entry

CONTROL = {CONF_ALLOW_CONTROL: True}
GEAR = "select.pack_1_charge_limiter_gear"
CAN_PROTOCOL = "select.pack_1_inverter_can_protocol"
BUZZER = "switch.pack_1_buzzer"
CLOCK = "sensor.pack_1_bms_clock"


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def call(hass: HomeAssistant, service: str, data: dict[str, Any], *, response: bool = True) -> Any:
    return await hass.services.async_call(DOMAIN, service, data, blocking=True, return_response=response)


def device_id(hass: HomeAssistant, entry: MockConfigEntry, address: int | None) -> str:
    """The registry id of a pack device (address None: the cluster hub)."""
    identifier = device_base(entry) if address is None else pack_identifier(entry.runtime_data, address)
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, identifier), entry.entry_id)
    assert device is not None
    return device.id


async def poll(hass: HomeAssistant, seconds: float = 11) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.parametrize("simulator", [{"protocol": ProtocolName.PYLON}], indirect=True)
async def test_control_unsupported_off_pace(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, simulator: Simulator
) -> None:
    """A Pylon link gets no control entities even with control allowed, and the services say why."""
    entry = await setup_entry(hass, simulator, CONTROL)
    entities = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert entities
    assert not {e.domain for e in entities} & {"switch", "select", "button", "number"}
    address = entry.runtime_data.link_config.addresses[0]
    with pytest.raises(ServiceValidationError) as unsupported:
        await call(hass, "read_parameters", {"device_id": device_id(hass, entry, address)})
    assert unsupported.value.translation_key == "control_unsupported"
    assert unsupported.value.translation_placeholders == {"protocol": "Pylontech"}


async def test_write_on_a_dead_link(hass: HomeAssistant, simulator: Simulator) -> None:
    """A write the link cannot carry is a translated error naming the pack, and the refresh that follows shows
    the entities unavailable instead of the state from before."""
    await setup_entry(hass, simulator, CONTROL)
    assert state_of(hass, BUZZER) != STATE_UNAVAILABLE
    await simulator.stop()
    with pytest.raises(HomeAssistantError) as failed:
        await hass.services.async_call(SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: BUZZER}, blocking=True)
    assert not isinstance(failed.value, ServiceValidationError)
    assert failed.value.translation_key == "write_failed"
    assert failed.value.translation_placeholders is not None
    assert failed.value.translation_placeholders["address"] == "1"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert state_of(hass, BUZZER) == STATE_UNAVAILABLE


@pytest.mark.parametrize("simulator", [{"packs": 2, "link": "rs485"}], indirect=True)
async def test_pack_missing_a_poll(hass: HomeAssistant, simulator: Simulator) -> None:
    """On an RS485 bus (every pack writable) a silent pack's switches and gear select are unavailable (nothing
    to base a state on); a status change published meanwhile is dropped rather than attached to no status."""
    detected = await entry_for(simulator, CONTROL)
    # Polled pack by pack (detection prefers the master's broadcast), so one silent pack leaves the others.
    entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id=detected.unique_id,
        data={**detected.data, "strategy": str(Strategy.BUS)},
        options=CONTROL,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data
    buzzer, gear = "switch.pack_2_buzzer", "select.pack_2_charge_limiter_gear"
    shown = state_of(hass, buzzer), state_of(hass, gear)
    assert STATE_UNAVAILABLE not in shown
    simulator.cluster.set_online(2, False)
    await poll(hass)
    assert coordinator.last_update_success
    assert coordinator.data.cluster.packs[2].status is None
    assert state_of(hass, buzzer) == state_of(hass, gear) == STATE_UNAVAILABLE
    before = coordinator.data
    update_pack_status(coordinator, 2, lambda status: replace(status, buzzer_enabled=False))
    assert coordinator.data is before

    simulator.cluster.set_online(2, True)
    await poll(hass)
    assert (state_of(hass, buzzer), state_of(hass, gear)) == shown


async def test_settings_not_read_yet(hass: HomeAssistant, simulator: Simulator) -> None:
    """Without the protocol group a protocol select is unavailable and accepts only the table's options; without
    a clock reading the clock sensor is unknown."""
    entry = await setup_entry(hass, simulator, CONTROL)
    coordinator = entry.runtime_data
    del coordinator.parameters[1][ProtocolSelection]
    del coordinator.clocks[1]
    coordinator.async_update_listeners()
    assert state_of(hass, CAN_PROTOCOL) == STATE_UNAVAILABLE
    assert state_of(hass, CLOCK) == STATE_UNKNOWN

    platform = next(p for p in async_get_platforms(hass, DOMAIN) if p.domain == SELECT_DOMAIN)
    select = platform.entities[CAN_PROTOCOL]
    assert isinstance(select, ProtocolSelect)
    assert select.current_option is None
    with pytest.raises(ServiceValidationError) as invalid:
        await select.async_select_option("unknown_0x13")  # the pack's code, but it has not been read
    assert invalid.value.translation_key == "invalid_option"

    await coordinator.async_read_settings()
    coordinator.async_update_listeners()
    assert state_of(hass, CAN_PROTOCOL) != STATE_UNAVAILABLE
    assert state_of(hass, CLOCK) != STATE_UNKNOWN


async def test_gear_select_through_the_service(hass: HomeAssistant, simulator: Simulator) -> None:
    """The gear shown after a write is the reply's control byte, published before the next poll."""
    entry = await setup_entry(hass, simulator, CONTROL)
    await hass.services.async_call(
        SELECT_DOMAIN, SERVICE_SELECT_OPTION, {ATTR_ENTITY_ID: GEAR, ATTR_OPTION: "low"}, blocking=True
    )
    status = entry.runtime_data.data.cluster.packs[1].status
    assert status is not None
    assert status.limiter_low_gear is True
    assert state_of(hass, GEAR) == "low"


async def test_service_targets_that_are_not_packs(hass: HomeAssistant, simulator: Simulator) -> None:
    """The hub device and an unknown id are refused before anything is sent."""
    entry = await setup_entry(hass, simulator)
    simulator.sent.clear()
    for target in (device_id(hass, entry, None), "no-such-device"):
        with pytest.raises(ServiceValidationError) as refused:
            await call(hass, "read_parameters", {"device_id": target})
        assert refused.value.translation_key == "not_a_pack"
        assert refused.value.translation_placeholders == {"device_id": target}
    assert not simulator.sent


async def test_service_finds_the_pack_of_a_second_link(hass: HomeAssistant, simulator: Simulator) -> None:
    """With two links loaded a pack of the second link is found there (the first link's entry is passed over)."""
    await setup_entry(hass, simulator)
    second = Simulator(SimulatorConfig(packs=1, speed=0, paced=False, seed=2))
    await second.start()
    try:
        entry = await setup_entry(hass, second)
        result = await call(hass, "read_parameters", {"device_id": device_id(hass, entry, 1), "group": "sleep"})
        assert result["address"] == 1
        assert second.sent
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await second.stop()


async def test_set_clock_now_and_with_zone(hass: HomeAssistant, simulator: Simulator) -> None:
    """Without a date-time the clock is set to now; a date-time with a zone is written as local time."""
    entry = await setup_entry(hass, simulator, CONTROL)
    target = device_id(hass, entry, 1)
    pack = simulator.cluster.pack(1)

    await call(hass, "set_clock", {"device_id": target}, response=False)
    now = dt_util.now().replace(tzinfo=None)
    assert abs((pack.clock(simulator.cluster.time_s) - now).total_seconds()) < 5

    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt_util.UTC)
    await call(hass, "set_clock", {"device_id": target, "datetime": moment.isoformat()}, response=False)
    local = dt_util.as_local(moment).replace(tzinfo=None)
    assert local != moment.replace(tzinfo=None)  # the test zone is not UTC, so the conversion shows
    assert pack.clock(simulator.cluster.time_s) == local
    assert dt_util.parse_datetime(state_of(hass, CLOCK)) == dt_util.as_local(moment)


async def test_diagnostics_edges(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    device_registry: dr.DeviceRegistry,
    simulator: Simulator,
) -> None:
    """Pack 2's own diagnostics; a device of the entry that is neither hub nor pack gives nothing; an active
    protection shows by its name; a request the pack did not answer shows without a reply."""
    entry = await setup_entry(hass, simulator, CONTROL)
    pack_2 = device_registry.async_get(device_id(hass, entry, 2))
    assert isinstance(pack_2, dr.DeviceEntry)
    diagnostics: dict[str, Any] = await get_diagnostics_for_device(hass, hass_client, entry, pack_2)
    assert diagnostics["address"] == 2
    assert diagnostics["writable"] is False
    assert diagnostics["identity"] is None
    other = device_registry.async_get_or_create(config_entry_id=entry.entry_id, identifiers={(DOMAIN, "other")})
    assert await get_diagnostics_for_device(hass, hass_client, entry, other) == {}

    pack = simulator.cluster.pack(1)
    pack.apply_settings(replace(pack.settings, cell_ov_release_mv=2900, cell_ov_alarm_mv=3000, cell_ov_protect_mv=3100))
    simulator.advance(10)
    await poll(hass)
    simulator.cluster.set_online(1, False)  # the master: nothing answers now
    await poll(hass)
    entry_diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    protections = entry_diagnostics["cluster"]["packs"]["1"]["status"]["protections"]
    assert Condition.CELL_OVERVOLTAGE.value in protections
    analog = entry_diagnostics["link"]["last_frames"][f"0x{Cid2.ANALOG:02X}"]
    assert analog["request"].endswith("\\r")
    assert analog["reply"] is None


async def test_can_entry_diagnostics(hass: HomeAssistant) -> None:
    """A CAN entry's diagnostics (its own coordinator is not asked) hold the redacted entry only; none per device."""
    from custom_components.lfp_bms.diagnostics import (
        async_get_config_entry_diagnostics,
        async_get_device_diagnostics,
    )

    entry = MockConfigEntry(domain=DOMAIN, title="CAN", unique_id="can0", data={CONF_LINK: LINK_CAN})
    entry.add_to_hass(hass)
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics == {
        "entry": {"title": "CAN", "unique_id": "**REDACTED**", "data": {CONF_LINK: LINK_CAN}, "options": {}}
    }
    device = dr.async_get(hass).async_get_or_create(config_entry_id=entry.entry_id, identifiers={(DOMAIN, "can0")})
    assert await async_get_device_diagnostics(hass, entry, device) == {}
