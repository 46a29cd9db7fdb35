"""The coordinator's hourly re-reads (identity, parameters, clock) run beside the polls, not inside them; a link
that cannot be opened at setup retries the entry."""

from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.lfp_bms.bms.client import ClusterClient
from custom_components.lfp_bms.bms.control import GROUPS, PaceControl
from custom_components.lfp_bms.bms.frame import FrameError
from custom_components.lfp_bms.bms.pace_params import ProtocolSelection
from custom_components.lfp_bms.bms.simulator import Simulator
from custom_components.lfp_bms.const import CONF_ALLOW_CONTROL, CONF_SCAN_INTERVAL, SLOW_READ_INTERVAL
from custom_components.lfp_bms.coordinator import BankData, LfpBmsCoordinator

from .common import entry_for, setup_entry, state_of

INTERVAL_S = 60
CONTROL = {CONF_ALLOW_CONTROL: True, CONF_SCAN_INTERVAL: INTERVAL_S}
ALARM = "number.pack_1_charge_over_current_alarm"
CLOCK = "sensor.pack_1_bms_clock"


def _state(hass: HomeAssistant, entity_id: str) -> float:
    return float(_text(hass, entity_id))


def _text(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


def _bms_clock(simulator: Simulator) -> datetime:
    """The pack's own clock now, as the clock sensor shows it (in Home Assistant's time zone)."""
    return simulator.cluster.pack(1).clock(simulator.cluster.time_s).replace(tzinfo=dt_util.get_default_time_zone())


def _count_poll_requests(coordinator: LfpBmsCoordinator) -> list[int]:
    """Wrap the coordinator's update so that each poll's link requests are recorded."""
    counts: list[int] = []
    update: Callable[[], Coroutine[Any, Any, BankData]] = coordinator._async_update_data

    async def counted() -> BankData:
        before = coordinator.link.stats.requests
        try:
            return await update()
        finally:
            counts.append(coordinator.link.stats.requests - before)

    coordinator._async_update_data = counted  # type: ignore[method-assign]
    return counts


async def _poll(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_hourly_reread_runs_beside_the_poll(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory
) -> None:
    """A parameter and the clock changed on the pack itself show up after the first poll past the hour; that
    poll sends no more requests than any other (the re-read goes out afterwards, in a background task)."""
    entry = await setup_entry(hass, simulator, CONTROL)
    coordinator = entry.runtime_data
    counts = _count_poll_requests(coordinator)
    pack = simulator.cluster.pack(1)
    pack.apply_settings(replace(pack.settings, charge_oc_alarm_a=90))
    clock_before = _bms_clock(simulator)
    assert dt_util.parse_datetime(_text(hass, CLOCK)) == clock_before
    pack.clock_offset_s += 600  # the BMS clock jumps ten minutes ahead

    await _poll(hass, freezer, INTERVAL_S)  # not due yet: nothing re-read
    assert _state(hass, ALARM) == 104
    assert dt_util.parse_datetime(_text(hass, CLOCK)) == clock_before
    ordinary = coordinator.link.stats.requests

    await _poll(hass, freezer, SLOW_READ_INTERVAL.total_seconds())
    assert _state(hass, ALARM) == 90
    assert dt_util.parse_datetime(_text(hass, CLOCK)) == _bms_clock(simulator) == clock_before + timedelta(minutes=10)
    assert len(counts) == 2
    # Both polls alike (one broadcast analog + one status request for the RS232 master's cluster); the
    # re-read's exchanges (17 groups + clock + identity) came on top of the second, outside the poll.
    assert counts[0] == counts[1] == 2
    assert coordinator.link.stats.requests - ordinary > counts[1]

    # The re-read stamped the hour: the next poll re-reads nothing.
    pack.apply_settings(replace(pack.settings, charge_oc_alarm_a=80))
    await _poll(hass, freezer, INTERVAL_S)
    assert _state(hass, ALARM) == 90
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_hourly_identity_reread_without_control(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory
) -> None:
    """Without control only the identity of the writable pack is re-read (one exchange), never a parameter."""
    entry = await setup_entry(hass, simulator, {CONF_SCAN_INTERVAL: INTERVAL_S})
    coordinator = entry.runtime_data
    counts = _count_poll_requests(coordinator)
    coordinator.identities.clear()
    before = coordinator.link.stats.requests
    await _poll(hass, freezer, SLOW_READ_INTERVAL.total_seconds() + 1)
    assert set(coordinator.identities) == {1}
    assert coordinator.identities[1].serial == entry.unique_id
    assert coordinator.parameters == {}
    assert coordinator.clocks == {}
    assert counts == [2]
    assert coordinator.link.stats.requests - before > counts[0]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_cancels_a_running_reread(
    hass: HomeAssistant, simulator: Simulator, freezer: FrozenDateTimeFactory
) -> None:
    """Unloading while the re-read waits for the link cancels it before the link closes; nothing is left behind."""
    entry = await setup_entry(hass, simulator, CONTROL)
    coordinator = entry.runtime_data
    freezer.tick(SLOW_READ_INTERVAL + timedelta(seconds=1))
    await coordinator.async_refresh()
    task = coordinator._slow_read_task
    assert task is not None
    assert not task.done()
    async with coordinator.client.lock:  # the re-read cannot get the link
        requests = coordinator.link.stats.requests
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert task.cancelled()
        assert not coordinator.link.is_open
    assert coordinator.link.stats.requests == requests
    assert state_of(entry) is ConfigEntryState.NOT_LOADED


async def test_link_not_opened_retries_setup(hass: HomeAssistant, simulator: Simulator) -> None:
    """A link that cannot be opened at setup leaves the entry to be retried, with the reason."""
    entry = await entry_for(simulator)
    await simulator.stop()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert state_of(entry) is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert entry.reason.startswith("Cannot open the battery link: ")


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_settings_the_pack_will_not_give_are_left_out(hass: HomeAssistant, simulator: Simulator) -> None:
    """Garbled replies to the identity, one parameter group and the clock at setup do not stop the entry: those
    are left out (their entities unavailable or unknown), everything else is read."""
    garbled = FrameError("checksum mismatch")
    read_group = PaceControl.read_group

    async def read_group_but_protocols(control: PaceControl, address: int, group_type: type[Any]) -> Any:
        if group_type is ProtocolSelection:
            raise garbled
        return await read_group(control, address, group_type)

    entry = await entry_for(simulator, CONTROL)  # detection reads the identity as it is
    entry.add_to_hass(hass)
    with (
        patch.object(ClusterClient, "read_identity", side_effect=garbled),
        patch.object(PaceControl, "read_group", read_group_but_protocols),
        patch.object(PaceControl, "read_clock", side_effect=garbled),
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    coordinator = entry.runtime_data
    assert state_of(entry) is ConfigEntryState.LOADED
    assert coordinator.identities == {}
    assert coordinator.clocks == {}
    assert set(coordinator.parameters[1]) == set(GROUPS.values()) - {ProtocolSelection}
    assert _text(hass, "select.pack_1_inverter_can_protocol") == STATE_UNAVAILABLE
    assert _text(hass, CLOCK) == STATE_UNKNOWN
    assert _state(hass, ALARM) == 104
    assert await hass.config_entries.async_unload(entry.entry_id)
