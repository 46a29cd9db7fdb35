"""Implausible values through Home Assistant (issue 17): a checksum-valid reply carrying nonsense is never shown,
never integrated into energy, and a pack that keeps sending it raises a repair naming it and the value."""

import json
from collections.abc import AsyncGenerator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.lfp_bms.bms import plausibility
from custom_components.lfp_bms.bms.frame import decode_frame
from custom_components.lfp_bms.bms.models import Quantity
from custom_components.lfp_bms.bms.pace import Cid2, PaceDriver
from custom_components.lfp_bms.bms.simulator import (
    Cluster,
    ConstantProfile,
    FaultInjector,
    FaultPlan,
    PackSpec,
    Simulator,
)
from custom_components.lfp_bms.bms.simulator.can_bus import CanSimulator, CanSimulatorConfig
from custom_components.lfp_bms.can_coordinator import LfpCanCoordinator
from custom_components.lfp_bms.const import CONF_SCAN_INTERVAL, DOMAIN, IMPLAUSIBLE_REPAIR_READINGS
from custom_components.lfp_bms.coordinator import CLUSTER, LfpBmsCoordinator, implausible_issue_id
from custom_components.lfp_bms.entity import device_base
from custom_components.lfp_bms.migrate import MINOR_VERSION, VERSION

from .common import setup_entry

INTERVAL_S = 10
STRINGS = json.loads((Path(__file__).parents[1] / "custom_components/lfp_bms/strings.json").read_text())


def test_every_quantity_has_a_translated_repair() -> None:
    """The repair's translation key is chosen at run time (`implausible_<quantity>`): each must exist and use the
    placeholders the coordinators fill in."""
    for quantity in Quantity:
        issue = STRINGS["issues"][f"implausible_{quantity}"]
        text = issue["title"] + issue["description"]
        for placeholder in ("device", "value", "low", "high", "readings"):
            assert f"{{{placeholder}}}" in text, (quantity, placeholder)


def inject(simulator: Simulator, spec: str) -> None:
    plan = FaultPlan.parse(spec)
    simulator.fault_plan = plan
    simulator.injector = FaultInjector(plan, seed=11)


async def poll(hass: HomeAssistant, simulator: Simulator) -> None:
    simulator.advance(INTERVAL_S)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=INTERVAL_S + 1))
    await hass.async_block_till_done(wait_background_tasks=True)


def pack_states(hass: HomeAssistant, entry: MockConfigEntry, address: int) -> dict[str, str]:
    registry = er.async_get(hass)
    states = {}
    for key in ("voltage", "current", "soc", "power", "max_temperature"):
        entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{device_base(entry)}_{address}_{key}")
        if entity_id is None:
            continue
        state = hass.states.get(entity_id)
        assert state is not None
        states[key] = state.state
    return states


@pytest.mark.parametrize(
    "simulator", [{"packs": 1, "speed": 0, "paced": False, "seed": 1, "profile": ConstantProfile(30.0)}], indirect=True
)
async def test_implausible_pack_is_unavailable_and_raises_a_repair(hass: HomeAssistant, simulator: Simulator) -> None:
    """Every analog reply nonsense: the pack's entities are unavailable from the first poll (the link is fine), no
    energy is counted, and after IMPLAUSIBLE_REPAIR_READINGS polls a repair names the pack and the value. The first
    plausible poll brings everything back and clears the repair."""
    entry = await setup_entry(hass, simulator, {CONF_SCAN_INTERVAL: INTERVAL_S})
    coordinator: LfpBmsCoordinator = entry.runtime_data
    await poll(hass, simulator)
    assert STATE_UNAVAILABLE not in pack_states(hass, entry, 1).values()
    energy_before = dict(coordinator.data.energy)
    issues = ir.async_get(hass)
    issue_id = implausible_issue_id(entry.entry_id, 1)
    inject(simulator, "nonsense=1")
    for polls in range(1, IMPLAUSIBLE_REPAIR_READINGS + 2):
        await poll(hass, simulator)
        assert coordinator.last_update_success  # the link works; only the values are refused
        reading = coordinator.data.cluster.packs[1]
        assert reading.implausible is not None
        assert set(pack_states(hass, entry, 1).values()) == {STATE_UNAVAILABLE}
        issue = issues.async_get_issue(DOMAIN, issue_id)
        assert (issue is not None) == (polls >= IMPLAUSIBLE_REPAIR_READINGS), polls
    assert simulator.injector.counts["nonsense"] == 2 * (IMPLAUSIBLE_REPAIR_READINGS + 1)  # each poll asked twice
    assert coordinator.client.implausible_records == IMPLAUSIBLE_REPAIR_READINGS + 1
    assert coordinator.data.energy == energy_before  # 30 A of charge for a minute, none of it counted
    assert issue is not None
    assert issue.translation_key is not None
    assert issue.translation_key.startswith("implausible_")
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["device"] == "Pack 1 (Battery cluster)"
    assert issue.translation_placeholders["readings"] == str(IMPLAUSIBLE_REPAIR_READINGS)
    assert issue.severity is ir.IssueSeverity.WARNING
    inject(simulator, "")
    await poll(hass, simulator)
    states = pack_states(hass, entry, 1)
    assert STATE_UNAVAILABLE not in states.values()
    assert float(states["voltage"]) == pytest.approx(simulator.cluster.pack(1).voltage_mv / 1000, abs=0.001)
    assert issues.async_get_issue(DOMAIN, issue_id) is None


def plausible_published(hass: HomeAssistant, entry: MockConfigEntry, address: int) -> bool:
    """The pack's shown voltage, current and SOC lie within the limits of the simulator's 16-cell 100 Ah packs."""
    states = pack_states(hass, entry, address)
    if STATE_UNAVAILABLE in states.values():
        return True
    voltage, current, soc = (float(states[k]) for k in ("voltage", "current", "soc"))
    return 16 * 0.5 <= voltage <= 16 * 5 and abs(current) <= 2 * 104 * 1.5 and 0 <= soc <= 100


def valid_readings(simulator: Simulator) -> dict[int, set[tuple[float, float, float]]]:
    """Per pack, (voltage, current, SOC) of every analog reply the simulator sent without a value-changing fault."""
    driver = PaceDriver()
    readings: dict[int, set[tuple[float, float, float]]] = {}
    for sent in simulator.sent:
        request = decode_frame(sent.request)
        if sent.fault in ("wrong_addr", "nonsense") or request.cid2 != Cid2.ANALOG:
            continue
        for analog in driver.decode_analog(decode_frame(sent.reply), request.info[0]):
            if not analog.absent:
                readings.setdefault(analog.address, set()).add((analog.voltage_v, analog.current_a, analog.soc_pct))
    return readings


@pytest.mark.parametrize(
    "simulator",
    [
        pytest.param({"packs": 2, "speed": 0, "paced": False, "seed": 1}, id="rs232_broadcast"),
        pytest.param({"packs": 3, "speed": 0, "paced": False, "seed": 1, "link": "rs485"}, id="rs485_bus"),
    ],
    indirect=True,
)
async def test_nonsense_is_never_shown_nor_integrated(hass: HomeAssistant, simulator: Simulator) -> None:
    """Half the analog replies nonsense: every value shown is one of a clean reply, energy never jumps
    (each poll adds at most what the cluster can carry in an interval), and the in-poll repeat rescues most polls."""
    entry = await setup_entry(hass, simulator, {CONF_SCAN_INTERVAL: INTERVAL_S})
    coordinator: LfpBmsCoordinator = entry.runtime_data
    inject(simulator, "nonsense=0.5")
    bound_kwh = sum(2 * 104 * 1.5 * 16 * 3.7 for _ in simulator.addresses) * INTERVAL_S / 3.6e6
    unavailable = 0
    for _ in range(40):
        totals = coordinator.data.energy.get(CLUSTER)
        await poll(hass, simulator)
        after = coordinator.data.energy[CLUSTER]
        if totals is not None:
            assert 0 <= after.charged_kwh - totals.charged_kwh <= bound_kwh
            assert 0 <= after.discharged_kwh - totals.discharged_kwh <= bound_kwh
        valid = valid_readings(simulator)
        for address in simulator.addresses:
            assert plausible_published(hass, entry, address)
            states = pack_states(hass, entry, address)
            if STATE_UNAVAILABLE in states.values():
                unavailable += 1
                continue
            shown = (float(states["voltage"]), float(states["current"]), float(states["soc"]))
            assert shown in valid.get(address, set()), (address, shown)
    nonsense = simulator.injector.counts["nonsense"]
    assert nonsense > 10
    # Only a repeat that was nonsense again (or found no retry left) costs a pack one poll of availability.
    assert unavailable == coordinator.client.implausible_records < nonsense
    assert coordinator.energy_samples_rejected == 0  # the limits caught everything before the energy bound


# -- CAN


@pytest.fixture
async def can_sim(socket_enabled: None) -> AsyncGenerator[CanSimulator]:
    cluster = Cluster([PackSpec(address=1), PackSpec(address=2)], seed=1, profile=ConstantProfile(-20.0))
    cluster.advance(120)
    sim = CanSimulator(cluster, CanSimulatorConfig(virtual_channel="lfp-can-plausibility", period_s=0.1))
    await sim.start()
    yield sim
    await sim.stop()


def can_state(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{device_base(entry)}_{key}")
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def test_can_implausible_state_is_not_published(hass: HomeAssistant, can_sim: CanSimulator) -> None:
    """A CAN battery whose SOC turns implausible (remaining capacity 5 × full: SOC ~500 %): nothing is published
    (the last values stay until the silence timeout makes them unavailable), a repair names the battery and the
    value, and plausible frames bring the values back and clear it."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="PYLON CAN",
        version=VERSION,
        minor_version=MINOR_VERSION,
        data={"link": "can", "interface": "virtual", "channel": can_sim.config.virtual_channel, "bitrate": 500000},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator: LfpCanCoordinator = entry.runtime_data
    soc_before = can_state(hass, entry, "soc")
    assert float(soc_before) <= 100
    issue_id = implausible_issue_id(entry.entry_id)
    raised: list[Event[Any]] = []
    hass.bus.async_listen(ir.EVENT_REPAIRS_ISSUE_REGISTRY_UPDATED, raised.append)
    pack = can_sim.cluster.packs[0]
    full_remaining = pack.remaining_ah
    pack.remaining_ah = pack.full_ah * 5
    while coordinator.implausible_readings < IMPLAUSIBLE_REPAIR_READINGS:
        await can_sim.wait_tick()
        # Fires the publish due in the next second (publishing is limited to once a second).
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=1.5))
        await hass.async_block_till_done()
        assert can_state(hass, entry, "soc") in (soc_before, STATE_UNAVAILABLE)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "implausible_soc"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["device"] == "PYLON CAN"
    soc = float(issue.translation_placeholders["value"].removesuffix(" %"))
    assert soc > 100
    assert any(e.data["issue_id"] == issue_id and e.data["action"] == "create" for e in raised)
    assert plausibility.check_can(coordinator.data.state) is None  # what entities read is the last good state
    pack.remaining_ah = full_remaining
    while ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None:
        await can_sim.wait_tick()
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=1.5))
        await hass.async_block_till_done()
    assert float(can_state(hass, entry, "soc")) <= 100
    assert await hass.config_entries.async_unload(entry.entry_id)
