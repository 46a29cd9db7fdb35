"""Plausibility limits (bms/plausibility.py): real packs pass, the nonsense of issue 17 does not, property tests."""

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.lfp_bms.bms import can, plausibility
from custom_components.lfp_bms.bms.driver import ALL_PACKS, Strategy
from custom_components.lfp_bms.bms.family20 import Eg4Driver, PylonDriver
from custom_components.lfp_bms.bms.frame import FrameError, decode_frame
from custom_components.lfp_bms.bms.models import IMPLAUSIBLE, ClusterSummary, PackAnalog, PackReading, Quantity
from custom_components.lfp_bms.bms.pace import PaceDriver, make_pack_analog, temperature_c
from custom_components.lfp_bms.bms.simulator import (
    Cluster,
    FaultInjector,
    FaultKind,
    FaultPlan,
    Nonsense,
    PackSpec,
    SineDayProfile,
)
from custom_components.lfp_bms.bms.simulator.can_bus import cluster_frames
from custom_components.lfp_bms.bms.simulator.responders import LinkMode, PaceResponder

from .test_client import MODES, assert_pack_matches, client_for, cluster
from .test_fuzz import capture_frames

BOUNDED = settings(max_examples=200, deadline=None)

#: tests/data/captures.md A.1 #2: a Jakiper JK48V100 at 52.429 V, −2.25 A, 48.19 of 103.46 Ah (design 100 Ah).
CAPTURED = (
    "~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC60CC7060B9B0B990B990B990BB30BBC"
    "FF1FCCCD12D303286A008C2710E1E4\r"
)


def captured_pack() -> PackAnalog:
    frame = decode_frame(CAPTURED.encode("ascii"))
    (analog,) = PaceDriver().decode_analog(frame, 1)
    return analog


def analog_captures() -> list[PackAnalog]:
    """Every pack record of every analog reply quoted in captures.md, decoded by its protocol's driver."""
    records: list[PackAnalog] = []
    for raw in capture_frames():
        frame = decode_frame(raw)
        if frame.cid2 != 0 or not frame.info:
            continue  # a request, or a reply without data
        for driver in (PaceDriver(), Eg4Driver(), PylonDriver()):
            if (frame.ver, frame.cid1) != (driver.ver, driver.cid1):
                continue
            try:
                records += [r for r in driver.decode_analog(frame) if not r.absent]
            except FrameError:
                continue  # another reply (status, parameters, history), or another protocol's layout
            break
    return records


def test_every_captured_pack_is_plausible() -> None:
    """The limits must never reject a real pack: every analog record quoted in captures.md passes."""
    records = analog_captures()
    assert len(records) == 4  # A.1 #2, B.1, B.2 (PACE) and F.1 (EG4)
    for record in records:
        assert plausibility.check_analog(record) is None, record


@pytest.mark.parametrize(
    ("cells", "design_ah", "tail"), [(16, 100.0, 0), (16, 280.0, 14), (15, 50.0, 8), (8, 150.0, 1)]
)
def test_simulated_day_is_plausible(cells: int, design_ah: float, tail: int) -> None:
    """A simulated day of charging and discharging (the physics of real packs) never trips a limit."""
    spec = PackSpec(address=1, cells=cells, temperatures=6, tail=tail, design_ah=design_ah)
    cluster = Cluster([spec], seed=3, profile=SineDayProfile(peak_charge_a=design_ah * 0.5, night_discharge_a=20))
    responder = PaceResponder(cluster, LinkMode.RS232_MASTER)
    for _ in range(24 * 12):
        cluster.advance(300)
        record = responder.wire_analog(cluster.packs[0], 1)
        assert plausibility.check_analog(record) is None, record


#: The nonsense issue 17 saw published, each as a change to a real record, and the quantity that must catch it.
NONSENSE: dict[str, tuple[dict[str, object], Quantity]] = {
    "6280.5 °C (0xFFFF)": (
        {"temperatures_c": (24.1, 23.9, temperature_c(0xFFFF), 23.9, 26.5, 27.4)},
        Quantity.TEMPERATURE,
    ),
    "SOC 255 %": ({"soc_pct": 255.0}, Quantity.STATE_OF_CHARGE),
    "SOC 65535 %": ({"soc_pct": 65535.0}, Quantity.STATE_OF_CHARGE),
    "65.5 V cell": ({"cell_voltages_mv": (65535, *(3271,) * 15)}, Quantity.CELL_VOLTAGE),
    "0 V pack": ({"voltage_v": 0.0}, Quantity.PACK_VOLTAGE),
    "21.5 kW on a 51.2 V pack": ({"voltage_v": 51.2, "current_a": 420.0}, Quantity.CURRENT),
    "65.5 V pack of 52 V of cells": ({"voltage_v": 65.535}, Quantity.PACK_VOLTAGE),
    "SOH 255 %": ({"soh_pct": 255.0}, Quantity.STATE_OF_HEALTH),
    "remaining 655.35 Ah": ({"remaining_ah": 655.35}, Quantity.CAPACITY),
    "NaN current": ({"current_a": float("nan")}, Quantity.CURRENT),
}


@pytest.mark.parametrize("change", NONSENSE.values(), ids=NONSENSE.keys())
def test_issue_17_nonsense_is_caught(change: tuple[dict[str, object], Quantity]) -> None:
    values, quantity = change
    base = captured_pack()
    assert plausibility.check_analog(base) is None
    problem = plausibility.check_analog(replace(base, **values))  # type: ignore[arg-type]
    assert problem is not None
    assert problem.quantity is quantity
    assert not problem.low <= problem.value <= problem.high


def test_message_names_value_and_range() -> None:
    problem = plausibility.check_analog(replace(captured_pack(), voltage_v=0.0))
    # The captured cells add up to 52.330 V; the pack voltage may differ by 10 %.
    assert str(problem) == "pack_voltage 0 V outside 47.097..57.563 V"


def test_power_bound_rejects_21_5_kw() -> None:
    """The energy bound of a 16-cell 100 Ah pack: 2 C × 1.5 = 300 A at 16 × 3.7 V, 17.76 kW (< 21.5 kW)."""
    pack = captured_pack()
    assert plausibility.max_power_w(pack) == pytest.approx(2 * 103.46 * 1.5 * 16 * 3.7)
    assert 327.67 * 65.535 > plausibility.max_power_w(pack) > 200 * 57.6


# -- properties


@st.composite
def plausible_packs(draw: st.DrawFn) -> PackAnalog:
    """Any record every value of which lies within the documented limits."""
    n = draw(st.sampled_from([8, 13, 15, 16]))
    cells = tuple(draw(st.lists(st.integers(500, 5000), min_size=n, max_size=n)))
    total = sum(cells) / 1000
    voltage = draw(st.floats(total * 0.9, total * 1.1)) if total * 0.9 <= total * 1.1 else total
    design = draw(st.floats(5, 655))
    full = draw(st.floats(0, design * 1.25))
    remaining = draw(st.floats(0, full * 1.05))
    limit = 2 * max(design, full) * 1.5
    tail = draw(st.sampled_from([b"", bytes([draw(st.integers(0, 100))])]))
    return make_pack_analog(
        address=1,
        cell_voltages_mv=cells,
        temperatures_c=draw(st.lists(st.floats(-40, 120), min_size=4, max_size=8)),
        current_a=draw(st.floats(-limit, limit)),
        voltage_v=min(max(voltage, n * 0.5), n * 5.0),
        remaining_ah=remaining,
        full_ah=full,
        design_ah=design,
        cycles=draw(st.integers(0, 65535)),
        tail=tail,
    )


@BOUNDED
@given(plausible_packs())
def test_values_within_the_limits_pass(pack: PackAnalog) -> None:
    assert plausibility.check_analog(pack) is None


@BOUNDED
@given(st.lists(plausible_packs(), min_size=1, max_size=16))
def test_cluster_soc_never_exceeds_100(packs: list[PackAnalog]) -> None:
    """Issue 17 saw a cluster SOC of 698 %: from plausible packs it cannot leave 0..100 %."""
    readings = {i: PackReading(address=i, analog=replace(p, address=i)) for i, p in enumerate(packs, 1)}
    soc = ClusterSummary.from_packs(readings).soc_pct
    assert soc is not None
    assert 0.0 <= soc <= 100.0


_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@BOUNDED
@given(
    st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=16),
    st.lists(_ANY_FLOAT, max_size=8),
    _ANY_FLOAT,
    _ANY_FLOAT,
    _ANY_FLOAT,
    _ANY_FLOAT,
    st.one_of(st.none(), _ANY_FLOAT),
    _ANY_FLOAT,
)
def test_any_record_is_judged_without_error(
    cells: list[int],
    temps: list[float],
    current: float,
    voltage: float,
    remaining: float,
    full: float,
    design: float | None,
    soc: float,
) -> None:
    """Whatever a decoder produced (NaN and infinities included), the check returns a verdict and never raises; a
    verdict of plausible means every value is within its limits."""
    pack = PackAnalog(
        address=1,
        cell_voltages_mv=tuple(cells),
        temperatures_c=tuple(temps),
        cell_temperatures_c=(),
        mosfet_temperature_c=None,
        environment_temperature_c=None,
        current_a=current,
        voltage_v=voltage,
        remaining_ah=remaining,
        full_ah=full,
        design_ah=design,
        cycles=0,
        soc_pct=soc,
        soh_pct=None,
    )
    problem = plausibility.check_analog(pack)
    if problem is None:
        assert all(500 <= mv <= 5000 for mv in cells)
        assert all(-40 <= t <= 120 for t in temps)
        assert 0 <= soc <= 100
        assert 0 <= remaining <= full * 1.05
        assert abs(current) <= 2 * max(design or 0, full, 0) * 1.5 or (
            max(design or 0, full) <= 0 and abs(current) <= 300
        )


# -- CAN


def simulated_can_state() -> can.CanState:
    """The state a listener folds from one cycle of the simulated CAN battery (2 packs)."""
    cluster = Cluster([PackSpec(address=1), PackSpec(address=2)], seed=1)
    state = can.CanState()
    for frame in cluster_frames(cluster):
        state = can.fold(state, *can.encode(frame))
    return state


def test_simulated_can_battery_is_plausible() -> None:
    state = simulated_can_state()
    assert state.complete
    assert plausibility.check_can(state) is None


CAN_NONSENSE: dict[str, tuple[int, bytes, Quantity]] = {
    "SOC 255 %": (0x355, can.StateOfCharge(soc_pct=255, soh_pct=100).encode(), Quantity.STATE_OF_CHARGE),
    "SOH 655 %": (0x355, can.StateOfCharge(soc_pct=50, soh_pct=655).encode(), Quantity.STATE_OF_HEALTH),
    "0 V": (0x356, can.Measurements(voltage_v=0, current_a=0, temperature_c=20).encode(), Quantity.PACK_VOLTAGE),
    "3276.7 A": (
        0x356,
        can.Measurements(voltage_v=52, current_a=3276.7, temperature_c=20).encode(),
        Quantity.CURRENT,
    ),
    "3276.7 °C": (
        0x356,
        can.Measurements(voltage_v=52, current_a=0, temperature_c=3276.7).encode(),
        Quantity.TEMPERATURE,
    ),
    "remaining 6553.5 of 200 Ah": (
        0x354,
        can.Capacity(nominal_ah=200, remaining_ah=6553.5).encode(),
        Quantity.CAPACITY,
    ),
}


@pytest.mark.parametrize("frame", CAN_NONSENSE.values(), ids=CAN_NONSENSE.keys())
def test_can_nonsense_is_caught(frame: tuple[int, bytes, Quantity]) -> None:
    arbitration_id, data, quantity = frame
    problem = plausibility.check_can(can.fold(simulated_can_state(), arbitration_id, data))
    assert problem is not None
    assert problem.quantity is quantity


def test_can_current_limit_follows_capacity_or_announced_limits() -> None:
    """Without capacity frames the limit is the module count × 100 Ah, or the announced limits × margin."""
    state = can.CanState()
    assert plausibility.can_current_limit_a(state) == 300.0
    state = can.fold(state, 0x359, can.AlarmFlags(protection=0, warning=0, module_count=4).encode())
    assert plausibility.can_current_limit_a(state) == 1200.0
    state = can.fold(
        state, 0x351, can.ChargeLimits(charge_voltage_v=56, charge_current_a=900, discharge_current_a=1000).encode()
    )
    assert plausibility.can_current_limit_a(state) == 1500.0
    state = can.fold(state, 0x379, can.InstalledCapacity(capacity_ah=600).encode())
    assert plausibility.can_current_limit_a(state) == 1800.0


# -- the simulator's nonsense fault and the client


#: What each nonsense kind of the simulator must be caught as (a record without a SOC byte: by its capacity).
CAUGHT_AS = {
    Nonsense.TEMPERATURE: Quantity.TEMPERATURE,
    Nonsense.SOC: Quantity.CAPACITY,
    Nonsense.CELL: Quantity.CELL_VOLTAGE,
    Nonsense.PACK_ZERO: Quantity.PACK_VOLTAGE,
    Nonsense.POWER: Quantity.PACK_VOLTAGE,
    Nonsense.CURRENT: Quantity.CURRENT,
}


@pytest.mark.parametrize("tail", [0, 1])
@pytest.mark.parametrize("kind", list(Nonsense))
def test_simulator_nonsense_is_checksum_valid_and_caught(kind: Nonsense, tail: int) -> None:
    """Each nonsense reply frames and decodes like a real one and carries one implausible value in one record."""
    cluster_ = Cluster([PackSpec(address=1, tail=tail), PackSpec(address=2, tail=tail)], seed=1)
    responder = PaceResponder(cluster_, LinkMode.RS232_MASTER)
    driver = PaceDriver()
    request = decode_frame(driver.analog_request(1, ALL_PACKS))
    reply = responder.respond(request)
    assert reply is not None
    falsified = responder.nonsense(request, reply, kind, random.Random(3))
    records = driver.decode_analog(decode_frame(falsified), ALL_PACKS)  # checksum and layout intact
    problems = [p for p in map(plausibility.check_analog, records) if p is not None]
    assert len(problems) == 1
    expected = Quantity.STATE_OF_CHARGE if (kind is Nonsense.SOC and tail) else CAUGHT_AS[kind]
    assert problems[0].quantity is expected


class ScriptedInjector(FaultInjector):
    """Applies the given faults to the next replies in order, then none."""

    def __init__(self, *faults: FaultKind | None) -> None:
        super().__init__(FaultPlan.parse("nonsense=1"), seed=5)
        self.script = list(faults)

    def draw(self, *, nonsense: bool = False) -> FaultKind | None:
        fault = self.script.pop(0) if self.script else None
        if fault is not None:
            self.count(fault)
        return fault


@pytest.mark.parametrize(("link_mode", "strategy"), MODES)
async def test_one_nonsense_reply_is_asked_again(link_mode: str, strategy: Strategy) -> None:
    """Like a garbled reply: the analog exchange is repeated once and the repeat's values are published."""
    async with cluster(packs=2, link=link_mode) as (sim, link):
        sim.injector = ScriptedInjector(FaultKind.NONSENSE)
        client = client_for(link, sim, strategy)
        state = await client.read_all()
        requests = sim.stats.requests
    assert sim.injector.counts["nonsense"] == 1
    assert client.implausible_records == 0
    for address in sim.addresses:
        assert_pack_matches(state, sim, address)
    # Broadcast: analog, its repeat, status. Per pack: analog and status each, one analog twice.
    exchanges = 2 if strategy is Strategy.BROADCAST else 2 * len(sim.addresses)
    assert requests == exchanges + 1


@pytest.mark.parametrize(("link_mode", "strategy"), MODES)
async def test_repeated_nonsense_is_not_published(link_mode: str, strategy: Strategy) -> None:
    """Nonsense again on the repeat: that pack's reading carries no values, names the implausible one and counts;
    the other pack is read as usual."""
    async with cluster(packs=2, link=link_mode) as (sim, link):
        sim.injector = ScriptedInjector(FaultKind.NONSENSE, FaultKind.NONSENSE)
        client = client_for(link, sim, strategy)
        state = await client.read_all()
    bad = [reading for reading in state.packs.values() if reading.error == IMPLAUSIBLE]
    assert len(bad) == 1
    assert bad[0].analog is None
    assert bad[0].implausible is not None
    assert not bad[0].online
    assert client.implausible_records == 1
    for address in sim.addresses:
        if address != bad[0].address:
            assert_pack_matches(state, sim, address)
    assert state.summary.packs_online == 1
