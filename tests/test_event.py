"""Alarm event entities end to end: a protection the simulator's physics raises and clears fires
alarm_raised/alarm_cleared with the flag, level, abbreviation and pack; no event without a real transition."""

from dataclasses import replace
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN, Platform
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from custom_components.lfp_bms.bms.simulator import PackModel, Simulator

from .common import setup_entry

PACK_1 = "event.pack_1_alarm"
PACK_2 = "event.pack_2_alarm"
CLUSTER = "event.battery_cluster_alarm"


async def poll(hass: HomeAssistant) -> None:
    """Let the coordinator poll once (the default interval is 10 s; the refresh runs as a background task)."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done(wait_background_tasks=True)


class Recorder:
    """Every event an event entity fires, as (event_type, data without event_type)."""

    def __init__(self, hass: HomeAssistant, *entity_ids: str) -> None:
        self.fired: dict[str, list[tuple[str, dict[str, Any]]]] = {e: [] for e in entity_ids}
        #: Last (state, attributes) that was an event: availability changes write it again unchanged.
        self._last: dict[str, tuple[str, Any]] = {}
        for entity_id in entity_ids:
            if (state := hass.states.get(entity_id)) is not None:
                self._last[entity_id] = (state.state, state.attributes)
        self.unsubscribe = async_track_state_change_event(hass, list(entity_ids), self._on_change)

    @callback
    def _on_change(self, event: Event[EventStateChangedData]) -> None:
        new: State | None = event.data["new_state"]
        if new is None or new.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
            return
        if self._last.get(new.entity_id) == (new.state, new.attributes):
            return
        self._last[new.entity_id] = (new.state, new.attributes)
        data = {k: new.attributes[k] for k in ("flag", "level", "abbreviation", "pack")}
        self.fired[new.entity_id].append((new.attributes["event_type"], data))

    def clear(self) -> None:
        for events in self.fired.values():
            events.clear()


def cell_ov_below_cells(pack: PackModel) -> None:
    """Lower the cell over-voltage warning and protection below the pack's highest cell (release too)."""
    highest = max(pack.cell_mv)
    pack.apply_settings(
        replace(
            pack.settings,
            cell_ov_alarm_mv=highest - 40,
            cell_ov_protect_mv=highest - 20,
            cell_ov_release_mv=highest - 60,
        )
    )


async def test_snapshot(
    hass: HomeAssistant, entity_registry: er.EntityRegistry, snapshot: SnapshotAssertion, simulator: Simulator
) -> None:
    """One alarm event entity for the cluster and one per pack."""
    with patch("custom_components.lfp_bms.PLATFORMS", [Platform.EVENT]):
        entry = await setup_entry(hass, simulator)
    await snapshot_platform(hass, entity_registry, snapshot, entry.entry_id)


async def test_alarm_raised_and_cleared(hass: HomeAssistant, simulator: Simulator) -> None:
    """Cell OV trips on pack 1 (warning and protection at once), then clears when the defaults come back."""
    await setup_entry(hass, simulator)
    recorder = Recorder(hass, PACK_1, PACK_2, CLUSTER)
    pack = simulator.cluster.pack(1)
    defaults = pack.settings
    cell_ov_below_cells(pack)
    simulator.advance(10)
    await poll(hass)

    raised = [
        ("alarm_raised", {"flag": "cell_overvoltage", "level": "protection", "abbreviation": "OVP", "pack": 1}),
        ("alarm_raised", {"flag": "cell_overvoltage", "level": "warning", "abbreviation": "OV", "pack": 1}),
    ]
    assert recorder.fired == {PACK_1: raised, PACK_2: [], CLUSTER: raised}
    state = hass.states.get(PACK_1)
    assert state is not None
    assert state.attributes["event_types"] == ["alarm_raised", "alarm_cleared"]
    assert state.attributes["event_type"] == "alarm_raised"
    assert state.attributes["flag"] == "cell_overvoltage"

    recorder.clear()
    await poll(hass)  # nothing changed: no event
    assert recorder.fired == {PACK_1: [], PACK_2: [], CLUSTER: []}

    pack.apply_settings(defaults)
    simulator.advance(10)
    await poll(hass)
    cleared = [("alarm_cleared", data) for _, data in raised]
    assert recorder.fired == {PACK_1: cleared, PACK_2: [], CLUSTER: cleared}
    recorder.unsubscribe()


@pytest.mark.parametrize("simulator", [{"packs": 2, "seed": 1}], indirect=True)
async def test_no_event_for_alarms_present_at_setup(hass: HomeAssistant, simulator: Simulator) -> None:
    """An alarm already active when the entry is set up is the baseline, not a transition."""
    cell_ov_below_cells(simulator.cluster.pack(2))
    simulator.advance(10)
    assert simulator.cluster.pack(2).protections
    await setup_entry(hass, simulator)
    state = hass.states.get(PACK_2)
    assert state is not None
    assert state.state == STATE_UNKNOWN  # never fired
    recorder = Recorder(hass, PACK_2, CLUSTER)
    await poll(hass)
    assert recorder.fired == {PACK_2: [], CLUSTER: []}
    recorder.unsubscribe()


async def test_no_event_when_pack_comes_back(hass: HomeAssistant, simulator: Simulator) -> None:
    """What changed while a pack was offline is unknown: its first reading back sets a new baseline silently."""
    await setup_entry(hass, simulator)
    recorder = Recorder(hass, PACK_2, CLUSTER)
    pack = simulator.cluster.pack(2)
    simulator.cluster.set_online(2, False)
    await poll(hass)
    state = hass.states.get(PACK_2)
    assert state is not None
    assert state.state == STATE_UNAVAILABLE
    other = hass.states.get(PACK_1)
    assert other is not None
    assert other.state != STATE_UNAVAILABLE

    cell_ov_below_cells(pack)
    simulator.cluster.set_online(2, True)
    simulator.advance(10)
    assert pack.protections
    await poll(hass)
    assert recorder.fired == {PACK_2: [], CLUSTER: []}
    state = hass.states.get(PACK_2)
    assert state is not None
    assert state.state == STATE_UNKNOWN  # available again, still never fired

    # A real transition after that fires again.
    pack.apply_settings(replace(pack.settings, cell_ov_alarm_mv=3600, cell_ov_protect_mv=3700, cell_ov_release_mv=3380))
    simulator.advance(10)
    await poll(hass)
    assert [e for e, _ in recorder.fired[PACK_2]] == ["alarm_cleared", "alarm_cleared"]
    assert recorder.fired[CLUSTER] == recorder.fired[PACK_2]
    recorder.unsubscribe()
