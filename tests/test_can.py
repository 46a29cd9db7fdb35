"""The CAN link end to end: config flow, push coordinator and entities against the simulated master's CAN port,
over python-can's `virtual` interface and over an slcan adapter emulated on TCP."""

import asyncio
import itertools
import logging
from collections.abc import AsyncGenerator, Callable
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import can
import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.lfp_bms.bms.can import KEEP_ALIVE_ID
from custom_components.lfp_bms.bms.simulator import Cluster, ConstantProfile, PackSpec
from custom_components.lfp_bms.bms.simulator.can_bus import CanSimulator, CanSimulatorConfig
from custom_components.lfp_bms.can_coordinator import LfpCanCoordinator
from custom_components.lfp_bms.const import DOMAIN
from custom_components.lfp_bms.entity import device_base
from custom_components.lfp_bms.migrate import MINOR_VERSION, VERSION

_channels = itertools.count()


@pytest.fixture
async def can_sim(socket_enabled: None, request: pytest.FixtureRequest) -> AsyncGenerator[CanSimulator]:
    """Two packs discharging at 20 A, broadcasting every 0.1 s on a fresh virtual channel (and, when
    parametrised with {"slcan": True}, through an slcan adapter on TCP). Physics moves only on advance()."""
    cluster = Cluster([PackSpec(address=1), PackSpec(address=2)], seed=1, profile=ConstantProfile(-20.0))
    cluster.advance(120)
    options: dict[str, Any] = {"virtual_channel": f"lfp-can-{next(_channels)}", "period_s": 0.1}
    options.update(getattr(request, "param", {}))
    sim = CanSimulator(cluster, CanSimulatorConfig(**options))
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def spy(can_sim: CanSimulator) -> Any:
    """Another node on the simulator's virtual channel: sees everything anyone sends there."""
    bus = can.Bus(interface="virtual", channel=can_sim.config.virtual_channel)
    yield bus
    bus.shutdown()


def _drain(bus: can.BusABC) -> list[can.Message]:
    return list(iter(lambda: bus.recv(0), None))


def _user_input(sim: CanSimulator, **changes: Any) -> dict[str, Any]:
    slcan = sim.config.slcan
    data = {
        "interface": "slcan" if slcan else "virtual",
        "channel": sim.url if slcan else sim.config.virtual_channel,
        "bitrate": "500000",
        "listen_only": False,
        "keep_alive": False,
    }
    return data | changes


async def _flow_to_can_form(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert "can" in result["menu_options"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {"next_step_id": "can"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "can"
    return result["flow_id"]


async def _add_through_flow(hass: HomeAssistant, sim: CanSimulator, **changes: Any) -> ConfigEntry[Any]:
    flow_id = await _flow_to_can_form(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _user_input(sim, **changes))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "can_confirm"
    # What was heard is shown before anything is created.
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert placeholders["manufacturer"] == "PYLON"
    assert placeholders["modules"] == str(len(sim.cluster.packs))
    result = await hass.config_entries.flow.async_configure(flow_id, {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    return entry


def _state(hass: HomeAssistant, entry: ConfigEntry[Any], platform: str, key: str) -> State:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{device_base(entry)}_{key}")
    assert entity_id is not None, key
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


def _value(hass: HomeAssistant, entry: ConfigEntry[Any], key: str) -> float:
    return float(_state(hass, entry, "sensor", key).state)


async def _until(coordinator: LfpCanCoordinator, predicate: Callable[[], bool]) -> None:
    """Wait for coordinator updates until `predicate` holds (bounded: a broken link fails, it does not hang)."""
    updated = asyncio.Event()
    unsub = coordinator.async_add_listener(updated.set)
    try:
        async with asyncio.timeout(15):
            while not predicate():
                updated.clear()
                await updated.wait()
    finally:
        unsub()


def _assert_matches_physics(hass: HomeAssistant, entry: ConfigEntry[Any], sim: CanSimulator) -> None:
    """Entity values against the simulated packs, within the resolution of the wire (docs/protocol.md §3.2 scales)."""
    packs = sim.cluster.packs
    voltage = sum(p.voltage_mv for p in packs) / len(packs) / 1000
    current = sum(p.current_a for p in packs)
    full = sum(p.full_ah for p in packs)
    soc = sum(p.soc_pct * p.full_ah for p in packs) / full
    cell_temps = [t for p in packs for t in p.cell_temps_c]
    cells = [mv for p in packs for mv in p.cell_mv]
    assert _value(hass, entry, "voltage") == pytest.approx(voltage, abs=0.0051)
    assert _value(hass, entry, "current") == pytest.approx(current, abs=0.051)
    assert current < 0  # discharging: the sign convention reached the entity
    assert _value(hass, entry, "power") == pytest.approx(voltage * current, rel=0.01)
    assert _value(hass, entry, "soc") == pytest.approx(soc, abs=0.51)
    assert _value(hass, entry, "soh") == pytest.approx(sum(p.soh_pct for p in packs) / len(packs), abs=0.51)
    assert _value(hass, entry, "temperature") == pytest.approx(sum(cell_temps) / len(cell_temps), abs=0.051)
    assert _value(hass, entry, "module_count") == len(packs)
    assert _value(hass, entry, "lowest_cell_voltage") == min(cells) / 1000
    assert _value(hass, entry, "highest_cell_voltage") == max(cells) / 1000
    assert _value(hass, entry, "max_temperature") == pytest.approx(max(cell_temps), abs=0.051)
    assert _value(hass, entry, "min_temperature") == pytest.approx(min(cell_temps), abs=0.051)
    cells_per_pack = packs[0].spec.cells
    expected_cvl = sim.cluster.config.charger_cv_per_cell_v * cells_per_pack
    assert _value(hass, entry, "charge_voltage_limit") == pytest.approx(expected_cvl, abs=0.051)
    assert _value(hass, entry, "discharge_current_limit") > 0
    assert _state(hass, entry, "binary_sensor", "charge_enable").state == STATE_ON
    assert _state(hass, entry, "binary_sensor", "discharge_enable").state == STATE_ON
    assert _state(hass, entry, "binary_sensor", "protection").state == STATE_OFF
    bms_discharged = sum(p.bms_counters.discharged_wh for p in packs) / 1000
    assert _value(hass, entry, "bms_energy_discharged") == pytest.approx(bms_discharged, abs=0.0051)


async def _check_live_link(hass: HomeAssistant, entry: ConfigEntry[Any], sim: CanSimulator) -> None:
    coordinator: LfpCanCoordinator = entry.runtime_data
    _assert_matches_physics(hass, entry, sim)
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, device_base(entry)), entry.entry_id)
    assert isinstance(device, dr.DeviceEntry)
    assert device.manufacturer == "PYLON"
    # Ten more minutes of discharge: the published values follow the physics.
    before = _value(hass, entry, "voltage")
    sim.cluster.advance(600)
    expected = round(sum(p.voltage_mv for p in sim.cluster.packs) / len(sim.cluster.packs) / 1000, 2)
    assert expected != before
    await _until(coordinator, lambda: _value(hass, entry, "voltage") == expected)
    _assert_matches_physics(hass, entry, sim)
    # Energy is integrated from the published power between two publishes.
    await _until(coordinator, lambda: _value(hass, entry, "energy_discharged") > 0)
    assert _value(hass, entry, "energy_charged") == 0


async def test_virtual_bus_end_to_end(
    hass: HomeAssistant, can_sim: CanSimulator, spy: can.BusABC, entity_registry_enabled_by_default: None
) -> None:
    """Flow → entry → entities equal to the simulated cluster; nothing is ever sent without the keep-alive."""
    entry = await _add_through_flow(hass, can_sim)
    assert entry.data == {
        "link": "can",
        "interface": "virtual",
        "channel": can_sim.config.virtual_channel,
        "bitrate": 500000,
        "listen_only": False,
        "keep_alive": False,
    }
    await _check_live_link(hass, entry, can_sim)
    assert _state(hass, entry, "binary_sensor", "protection_cell_overvoltage").state == STATE_OFF
    # The spy on the same channel heard the battery (so it works) and never a keep-alive from us.
    heard = _drain(spy)
    assert {m.arbitration_id for m in heard} >= {0x351, 0x355, 0x356, 0x359}
    assert all(m.arbitration_id != KEEP_ALIVE_ID for m in heard)
    assert can_sim.stats.keep_alives == 0
    assert not can_sim.received
    link = entry.runtime_data.link
    assert link.is_open
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not link.is_open


@pytest.mark.parametrize("can_sim", [{"slcan": True}], indirect=True)
async def test_slcan_over_tcp_end_to_end(hass: HomeAssistant, can_sim: CanSimulator) -> None:
    """The same through python-can's slcan interface and a TCP-served adapter (socket:// channel)."""
    entry = await _add_through_flow(hass, can_sim)
    assert entry.data["interface"] == "slcan"
    assert entry.data["channel"] == can_sim.url
    await _check_live_link(hass, entry, can_sim)
    # python-can set the bit rate and opened the channel; nothing was transmitted.
    assert "S6" in can_sim.stats.slcan_commands
    assert "O" in can_sim.stats.slcan_commands
    assert not any(c.startswith(("t", "T")) for c in can_sim.stats.slcan_commands)
    assert await hass.config_entries.async_unload(entry.entry_id)


def _can_entry(sim: CanSimulator, **data: Any) -> MockConfigEntry:
    channel = sim.config.virtual_channel
    return MockConfigEntry(
        domain=DOMAIN,
        title="PYLON CAN",
        version=VERSION,
        minor_version=MINOR_VERSION,
        data={"link": "can", "interface": "virtual", "channel": channel, "bitrate": 500000} | data,
    )


async def _set_up(hass: HomeAssistant, entry: MockConfigEntry) -> LfpCanCoordinator:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator: LfpCanCoordinator = entry.runtime_data
    assert coordinator.last_update_success
    return coordinator


def _slcan_entry(sim: CanSimulator) -> MockConfigEntry:
    return _can_entry(sim, interface="slcan", channel=sim.url)


_ENTITIES = (("sensor", "voltage"), ("sensor", "soc"), ("binary_sensor", "charge_enable"))


async def _lose_link(hass: HomeAssistant, coordinator: LfpCanCoordinator, sim: CanSimulator) -> None:
    """The emulated adapter goes away; wait until the coordinator noticed it and closed its end."""
    await sim.drop_slcan()
    await _until(coordinator, lambda: not coordinator.last_update_success)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert not coordinator.link.is_open


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and r.name.startswith("custom_components.lfp_bms")]


async def _fire_while_down(hass: HomeAssistant, seconds: float) -> None:
    """Let `seconds` pass and wait for what they started (a reconnect attempt, which fails)."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    # Only while the link is down: a running link's frame consumer is a background task that never ends.
    await hass.async_block_till_done(wait_background_tasks=True)


async def _reconnect_after(hass: HomeAssistant, coordinator: LfpCanCoordinator, seconds: float) -> None:
    """Let `seconds` pass: the reconnect attempt due by then succeeds and frames are published again."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await _until(coordinator, lambda: coordinator.last_update_success)
    await hass.async_block_till_done()
    assert coordinator.link.is_open


@pytest.mark.parametrize("can_sim", [{"slcan": True}], indirect=True)
async def test_slcan_adapter_lost_and_back(
    hass: HomeAssistant, can_sim: CanSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The TCP adapter drops the connection: unavailable with one warning (no flood, no unhandled exception); it is
    reopened by itself, with backoff, once the adapter accepts connections again."""
    caplog.set_level(logging.DEBUG)
    entry = _slcan_entry(can_sim)
    coordinator = await _set_up(hass, entry)
    assert can_sim.stats.slcan_connections == 1
    delays = patch("custom_components.lfp_bms.can_coordinator.async_call_later", wraps=async_call_later)
    with delays as call_later:
        await _run_loss_and_return(hass, entry, coordinator, can_sim, caplog)
    reconnect_delays = [c.args[1] for c in call_later.call_args_list if c.args[2] == coordinator._reconnect_due]
    # 1 s, doubled after the refused attempt; back to 1 s after the link had come back.
    assert reconnect_delays == [1.0, 2.0, 1.0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not coordinator.link.is_open


async def _run_loss_and_return(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    coordinator: LfpCanCoordinator,
    can_sim: CanSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _lose_link(hass, coordinator, can_sim)
    for platform, key in _ENTITIES:
        assert _state(hass, entry, platform, key).state == STATE_UNAVAILABLE
    # Broadcast periods go by with the adapter gone (the loop runs): still the one line.
    for _ in range(5):
        await can_sim.wait_tick()
    # First attempt after 1 s: the adapter is still away (connection refused), so the next one waits 2 s.
    await _fire_while_down(hass, 1.5)
    assert not coordinator.link.is_open
    assert can_sim.stats.slcan_connections == 1
    (warning,) = _records(caplog, logging.WARNING)
    assert can_sim.url in warning.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert coordinator.last_exception is not None
    assert "reconnecting" in str(coordinator.last_exception)  # translated (can_link_lost)
    await can_sim.serve_slcan()
    await _reconnect_after(hass, coordinator, 3)
    assert can_sim.stats.slcan_connections == 2
    _assert_matches_physics(hass, entry, can_sim)
    assert len(_records(caplog, logging.WARNING)) == 1
    assert [r.getMessage() for r in _records(caplog, logging.INFO) if "reconnected" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # A second loss is reported again (once), and the link recovers again.
    await _lose_link(hass, coordinator, can_sim)
    assert len(_records(caplog, logging.WARNING)) == 2
    await can_sim.serve_slcan()
    await _reconnect_after(hass, coordinator, 1.5)
    assert can_sim.stats.slcan_connections == 3


@pytest.mark.parametrize("can_sim", [{"slcan": True}], indirect=True)
async def test_unload_while_reconnecting(hass: HomeAssistant, can_sim: CanSimulator) -> None:
    """Unloading during the backoff cancels the pending attempt; nothing lingers (verify_cleanup) or reopens."""
    entry = _slcan_entry(can_sim)
    coordinator = await _set_up(hass, entry)
    await _lose_link(hass, coordinator, can_sim)
    await can_sim.serve_slcan()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await _fire_while_down(hass, 120)
    assert not coordinator.link.is_open
    assert can_sim.stats.slcan_connections == 1


async def test_reader_thread_failure_reconnects(
    hass: HomeAssistant, can_sim: CanSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A bus without a file descriptor (python-can's reader thread, e.g. a USB adapter) failing: the same single
    warning, no uncaught thread exception, and a reopened bus once receiving works again."""
    entry = _can_entry(can_sim)
    coordinator = await _set_up(hass, entry)
    bus = coordinator.link._bus  # this bus only: the simulator's node on the channel keeps working
    with patch.object(bus, "_recv_internal", side_effect=can.CanOperationError("unplugged")):
        await _until(coordinator, lambda: not coordinator.last_update_success)
        await hass.async_block_till_done(wait_background_tasks=True)
    assert not coordinator.link.is_open
    (warning,) = _records(caplog, logging.WARNING)
    assert "unplugged" in warning.getMessage()
    await _reconnect_after(hass, coordinator, 1.5)
    _assert_matches_physics(hass, entry, can_sim)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_silence_unavailable_and_recovery(hass: HomeAssistant, can_sim: CanSimulator) -> None:
    """No frames for a few seconds → every entity unavailable; frames again → values back."""
    entry = _can_entry(can_sim)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator: LfpCanCoordinator = entry.runtime_data
    assert _state(hass, entry, "sensor", "voltage").state != STATE_UNAVAILABLE
    can_sim.silent = True
    await can_sim.wait_tick()
    await can_sim.wait_tick()
    # Twice: a publish still due from the last frames re-arms the silence timer once.
    for seconds in (10, 20):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
        await hass.async_block_till_done()
    assert not coordinator.last_update_success
    for platform, key in (("sensor", "voltage"), ("sensor", "soc"), ("binary_sensor", "charge_enable")):
        assert _state(hass, entry, platform, key).state == STATE_UNAVAILABLE
    can_sim.silent = False
    await _until(coordinator, lambda: coordinator.last_update_success)
    await hass.async_block_till_done()
    _assert_matches_physics(hass, entry, can_sim)
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("can_sim", [{"keep_alive_timeout_s": 0.5}], indirect=True)
async def test_keep_alive_when_enabled(hass: HomeAssistant, can_sim: CanSimulator, spy: can.BusABC) -> None:
    """With keep_alive on, 0x305 (8 × 00) goes out every second and a BMS that needs it keeps talking."""
    entry = _can_entry(can_sim, keep_alive=True)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    while can_sim.stats.keep_alives < 3:
        await can_sim.wait_tick()
    assert can_sim.sending
    sent = [m for m in _drain(spy) if m.arbitration_id == KEEP_ALIVE_ID]
    assert sent
    assert all(bytes(m.data) == bytes(8) and not m.is_extended_id for m in sent)
    assert entry.runtime_data.last_update_success
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_setup_retries_when_nothing_is_heard(hass: HomeAssistant, can_sim: CanSimulator) -> None:
    """A silent bus at setup: ConfigEntryNotReady, the bus is closed again."""
    can_sim.silent = True
    entry = _can_entry(can_sim)
    entry.add_to_hass(hass)
    with patch("custom_components.lfp_bms.can_coordinator.CAN_LISTEN_TIMEOUT", timedelta(seconds=0.3)):
        assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    await hass.config_entries.async_unload(entry.entry_id)


async def test_flow_errors_then_success(hass: HomeAssistant, can_sim: CanSimulator) -> None:
    """Every form error, and the same flow carrying on to an entry afterwards."""
    flow_id = await _flow_to_can_form(hass)
    # virtual has no listen-only mode in python-can.
    result = await hass.config_entries.flow.async_configure(flow_id, _user_input(can_sim, listen_only=True))
    assert result["errors"] == {"listen_only": "listen_only_unsupported"}
    # A silent adapter cannot send: listen-only and keep-alive exclude each other.
    slcan_input = _user_input(can_sim, interface="slcan", channel="/dev/null", listen_only=True, keep_alive=True)
    result = await hass.config_entries.flow.async_configure(flow_id, slcan_input)
    assert result["errors"] == {"keep_alive": "keep_alive_listen_only"}
    # An adapter that cannot be opened.
    with patch("custom_components.lfp_bms.can_flow.async_listen", side_effect=can.CanInitializationError("gone")):
        result = await hass.config_entries.flow.async_configure(flow_id, _user_input(can_sim))
    assert result["errors"] == {"base": "cannot_connect"}
    # Nothing on the channel.
    with patch("custom_components.lfp_bms.can_flow.CAN_LISTEN_TIMEOUT", timedelta(seconds=0.3)):
        result = await hass.config_entries.flow.async_configure(flow_id, _user_input(can_sim, channel="nobody-here"))
    assert result["errors"] == {"base": "no_can_frames"}
    result = await hass.config_entries.flow.async_configure(flow_id, _user_input(can_sim))
    assert result["step_id"] == "can_confirm"
    result = await hass.config_entries.flow.async_configure(flow_id, {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # The same channel again is refused.
    flow_id = await _flow_to_can_form(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, _user_input(can_sim))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert await hass.config_entries.async_unload(result_entry_id(hass))


def result_entry_id(hass: HomeAssistant) -> str:
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    return entry.entry_id


async def test_can_entry_has_no_options_and_no_reconfigure(hass: HomeAssistant) -> None:
    """A CAN entry offers no (serial) options, and reconfigure aborts with a translated reason."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="PYLON CAN",
        unique_id="can_virtual_none",
        data={"link": "can", "interface": "virtual", "channel": "none", "bitrate": 500000},
    )
    entry.add_to_hass(hass)
    assert not entry.supports_options
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_can"
