"""Fault injection through the whole stack: the HA coordinator polling the simulator while the wire misbehaves.

Every case switches one fault class on after setup (detection itself is not under test here) and polls a bounded
number of times. After every poll it checks that
(a) each published pack voltage/current/SOC equals the values of one checksum-valid reply the simulator sent
    (decoded with the library from `simulator.sent`), never a value from a corrupted or misaddressed frame;
(b) a failed poll makes the pack entities unavailable at once, a silent pack's entities go unavailable on the
    first poll it misses, and everything is back on the next good poll;
(e) a poll fails exactly when the retry of a failed exchange failed too (the client repeats a lost or garbled
    exchange once, ClusterClient.RETRIES_PER_POLL), which the faults drawn for each reply tell in advance;
and at the end that (c) nothing but the coordinator's own "Error fetching …" line was logged at warning level or
above (an unhandled exception in a task is logged at error level by the loop, so it would show here), and
(d) the link counters account for every injected fault.

The coordinator's SerialLink is built with a 0.2 s reply timeout and no reconnect backoff so that a suite with
hundreds of timeouts stays quick; the default (1.0 s) is what `late_ms` is measured against in the late cases.
"""

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from unittest.mock import patch

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.lfp_bms.bms.driver import ALL_PACKS
from custom_components.lfp_bms.bms.frame import FrameError, decode_frame
from custom_components.lfp_bms.bms.pace import Cid2, PaceDriver
from custom_components.lfp_bms.bms.simulator import FaultInjector, FaultPlan, Simulator
from custom_components.lfp_bms.bms.simulator.faults import FaultKind
from custom_components.lfp_bms.bms.transport import SerialLink
from custom_components.lfp_bms.const import CONF_SCAN_INTERVAL, DOMAIN
from custom_components.lfp_bms.coordinator import LfpBmsCoordinator
from custom_components.lfp_bms.entity import device_base

from .common import setup_entry

INTERVAL_S = 10
TIMEOUT_S = 0.2
PACK_KEYS = ("voltage", "current", "soc")

#: (voltage V, current A, SOC %) as the pack sensors publish them.
type Published = tuple[float, float, float]


class RecordingInjector(FaultInjector):
    """The simulator's injector, also keeping the fault drawn for each reply in order (None: a clean reply)."""

    def __init__(self, plan: FaultPlan, seed: int) -> None:
        super().__init__(plan, seed)
        self.drawn: list[FaultKind | None] = []

    def draw(self, *, nonsense: bool = False) -> FaultKind | None:
        fault = FaultInjector.draw(self, nonsense=nonsense)
        self.drawn.append(fault)
        return fault


@pytest.fixture(autouse=True)
def fast_link() -> Generator[None]:
    """The coordinator's link with a short reply timeout and immediate reconnects (see the module docstring)."""
    fast = partial(SerialLink, timeout=TIMEOUT_S, reconnect_backoff=(0.0, 0.0))
    with patch("custom_components.lfp_bms.coordinator.SerialLink", fast):
        yield


@dataclass
class Harness:
    """One loaded entry plus what is needed to check it poll by poll."""

    hass: HomeAssistant
    simulator: Simulator
    entry: MockConfigEntry
    #: address → key → entity id.
    entities: dict[int, dict[str, str]] = field(default_factory=dict)
    polls: int = 0
    failed_polls: int = 0
    #: Faults that make one exchange attempt fail (the rest are harmless); see `poll`.
    failing: frozenset[str] = frozenset()
    #: Polls in which at least one reply carried a failing fault (each one a failed poll without the retry).
    faulted_polls: int = 0
    #: Polls that must fail: the last two replies both failed (an exchange and its retry), or the link was closed.
    doomed_polls: int = 0

    @property
    def coordinator(self) -> LfpBmsCoordinator:
        coordinator: LfpBmsCoordinator = self.entry.runtime_data
        return coordinator

    def inject(self, spec: str, seed: int = 7, failing: frozenset[str] = frozenset()) -> None:
        """Switch the simulator's per-reply faults to `spec` from the next request on."""
        plan = FaultPlan.parse(spec)
        self.simulator.fault_plan = plan
        self.simulator.injector = RecordingInjector(plan, seed)
        self.failing = failing

    @property
    def drawn(self) -> list[FaultKind | None]:
        injector = self.simulator.injector
        return injector.drawn if isinstance(injector, RecordingInjector) else []

    async def poll(self, advance_s: float = INTERVAL_S) -> None:
        """Let `advance_s` of battery time pass, then let the coordinator poll once and check the result."""
        drawn_before = len(self.drawn)
        closes_before = self.simulator.injector.counts.get("close", 0)
        self.simulator.advance(advance_s)
        async_fire_time_changed(self.hass, dt_util.utcnow() + timedelta(seconds=INTERVAL_S + 1))
        await self.hass.async_block_till_done(wait_background_tasks=True)
        self.polls += 1
        if not self.coordinator.last_update_success:
            self.failed_polls += 1
        # A broadcast poll is two exchanges, each tried at most twice. It fails only when an exchange and its
        # retry both fail, and it stops there, so its last two replies are those; a closed link is not retried.
        failed = [fault in self.failing for fault in self.drawn[drawn_before:]]
        self.faulted_polls += any(failed)
        closed = self.simulator.injector.counts.get("close", 0) > closes_before
        self.doomed_polls += closed or failed[-2:] == [True, True]
        self.check()

    def check(self) -> None:
        """(a) and (b) for the state HA holds right now."""
        valid = _valid_readings(self.simulator)
        success = self.coordinator.last_update_success
        for address, entity_ids in self.entities.items():
            states = {key: self.hass.states.get(entity_id) for key, entity_id in entity_ids.items()}
            values = {key: state.state for key, state in states.items() if state is not None}
            assert len(values) == len(PACK_KEYS)
            reachable = self.simulator.cluster.pack(address).reachable
            if not success or not reachable:
                # A failed poll or a silent pack: nothing of this pack may be shown.
                assert set(values.values()) == {STATE_UNAVAILABLE}, (address, values, success, reachable)
                continue
            # A good poll and an answering pack: available, with values from one valid reply.
            assert STATE_UNAVAILABLE not in values.values(), (address, values)
            published = (float(values["voltage"]), float(values["current"]), float(values["soc"]))
            assert published in valid.get(address, set()), (address, published)


def _valid_readings(simulator: Simulator) -> dict[int, set[Published]]:
    """Per pack, every (voltage, current, SOC) carried by a checksum-valid analog reply sent to the right ADR."""
    driver = PaceDriver()
    readings: dict[int, set[Published]] = {}
    for sent in simulator.sent:
        if sent.fault == "wrong_addr":
            continue  # valid frame, but for somebody else: must never be shown either
        request = decode_frame(sent.request)
        if request.cid2 != Cid2.ANALOG:
            continue
        reply = decode_frame(sent.reply)
        if reply.rtn:
            continue
        for analog in driver.decode_analog(reply, request.info[0] if request.info else None):
            if not analog.absent:
                readings.setdefault(analog.address, set()).add(
                    (analog.voltage_v, analog.current_a, round(analog.soc_pct, 1))
                )
    return readings


@pytest.fixture
async def harness(hass: HomeAssistant, simulator: Simulator) -> Harness:
    entry = await setup_entry(hass, simulator, {CONF_SCAN_INTERVAL: INTERVAL_S})
    registry = er.async_get(hass)
    h = Harness(hass, simulator, entry)
    for address in simulator.addresses:
        h.entities[address] = {}
        for key in PACK_KEYS:
            entity_id = registry.async_get_entity_id("sensor", DOMAIN, f"{device_base(entry)}_{address}_{key}")
            assert entity_id is not None
            h.entities[address][key] = entity_id
    h.check()
    return h


def _counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in after}


def _problem_logs(caplog: pytest.LogCaptureFixture) -> Iterator[logging.LogRecord]:
    """Records at warning or above other than the coordinator's documented "Error fetching … data" line."""
    for record in caplog.records:
        if record.levelno < logging.WARNING:
            continue
        if record.name == "asyncio" and record.getMessage().startswith("Executing"):
            continue  # the test loop's debug-mode "slow callback" note about HA's own setup, not a fault
        if record.name == "custom_components.lfp_bms.coordinator" and record.getMessage().startswith("Error fetching"):
            continue
        yield record


@dataclass(frozen=True)
class Case:
    spec: str
    polls: int
    #: LinkStats field → injector count(s) it must equal (summed).
    counters: dict[str, tuple[str, ...]]
    #: Faults of this class that make an exchange attempt fail (and be retried); empty: the class is harmless.
    failing: frozenset[str] = frozenset()
    #: False: the counters may stay below the injected count and the failed polls below the predicted (late case).
    exact: bool = True


CASES: dict[str, Case] = {
    "corrupt_1pct": Case(
        "corrupt=0.01", 200, {"checksum_errors": ("corrupt",), "timeouts": ("corrupt",)}, frozenset({"corrupt"})
    ),
    "corrupt_10pct": Case(
        "corrupt=0.1", 40, {"checksum_errors": ("corrupt",), "timeouts": ("corrupt",)}, frozenset({"corrupt"})
    ),
    "drop": Case("drop=0.1", 40, {"timeouts": ("drop",)}, frozenset({"drop"})),
    # 300 ms: later than the 0.2 s timeout of this suite by the ratio of the simulator's default 1500 ms to the
    # production timeout of 1 s, so the retry (another 0.2 s) is still waiting when the late reply comes in.
    # The simulator's wire is half duplex: the next request waits until the late reply is out, so that reply can
    # arrive while the client waits for its *next* request and is taken as that answer (PACE replies do not say
    # which CID2 they answer). Then no timeout is counted for it; the value check still holds. The retry of a
    # timed-out exchange is such a next request: it usually gets the late reply itself.
    "late": Case("late=0.1,late_ms=300", 40, {"timeouts": ("late",)}, frozenset({"late"}), exact=False),
    # 100 ms: slow but within the timeout, so nothing may fail.
    "late_within_timeout": Case("late=0.2,late_ms=100", 30, {"timeouts": ()}),
    "truncate": Case(
        "truncate=0.1", 40, {"truncated": ("truncate",), "timeouts": ("truncate",)}, frozenset({"truncate"})
    ),
    "garbage": Case("garbage=0.2", 40, {"checksum_errors": (), "timeouts": ()}),
    "wrong_addr": Case(
        "wrong_addr=0.1",
        40,
        {"wrong_address": ("wrong_addr",), "timeouts": ("wrong_addr",)},
        frozenset({"wrong_addr"}),
    ),
    # The connection is closed on the first request after 60 simulated seconds on it (every ~6 polls). A lost
    # link is not retried within the poll (it is reopened by the next one), so each close fails its poll.
    "link_closed": Case("close_every=60", 40, {"reconnects": ("close",)}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_fault_class(harness: Harness, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    """Each per-reply fault class: no wrong value shown, unavailable exactly while polls fail, counters right."""
    before = harness.coordinator.link.stats.snapshot()
    harness.inject(case.spec, failing=case.failing)
    for _ in range(case.polls):
        await harness.poll()
    counts = harness.simulator.injector.counts
    injected = sum(counts.values())
    delta = _counter_delta(before, harness.coordinator.link.stats.snapshot())

    assert injected > 0, "the case must actually inject something"
    for counter, sources in case.counters.items():
        expected = sum(counts.get(name, 0) for name in sources)
        if case.exact:
            assert delta[counter] == expected, (counter, delta, counts)
        else:
            assert 0 < delta[counter] <= expected, (counter, delta, counts)
    # Every request got exactly one reply draw, except one the simulator hung up on.
    assert delta["requests"] == len(harness.drawn) + counts.get("close", 0), (delta, counts)
    if case.exact:
        assert harness.failed_polls == harness.doomed_polls, (harness.failed_polls, harness.doomed_polls, counts)
    else:
        assert harness.failed_polls <= harness.doomed_polls, (harness.failed_polls, harness.doomed_polls, counts)
    if case.failing:
        # The retry rescued polls that would have failed without it, and a retry costs one request each.
        assert harness.failed_polls < harness.faulted_polls, (harness.failed_polls, harness.faulted_polls)
        assert delta["requests"] > 2 * harness.polls
    elif "close" not in counts:
        assert harness.failed_polls == 0
        assert delta["requests"] == 2 * harness.polls  # nothing was retried
    else:
        assert 0 < harness.failed_polls == counts["close"] < harness.polls
    # Recovery: a clean tail of polls leaves everything available with fresh values.
    harness.inject("")
    await harness.poll()
    assert harness.coordinator.last_update_success
    assert not list(_problem_logs(caplog))


@pytest.mark.parametrize(
    "simulator",
    [
        pytest.param({"packs": 2, "speed": 0, "paced": False, "seed": 1}, id="rs232_broadcast"),
        pytest.param({"packs": 3, "speed": 0, "paced": False, "seed": 1, "link": "rs485"}, id="rs485_bus"),
    ],
    indirect=True,
)
async def test_pack_offline_and_back(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A pack that leaves the link goes unavailable on the first poll it misses and comes back on the first poll
    after it returns; the other packs stay available throughout (the check runs after every poll)."""
    simulator = harness.simulator
    address = simulator.addresses[-1]
    start = simulator.cluster.time_s + 3 * INTERVAL_S + 5
    simulator.cluster.schedule_offline(address, start, 6 * INTERVAL_S)
    seen_offline = seen_back = False
    for _ in range(15):
        await harness.poll()
        assert harness.coordinator.last_update_success  # one silent pack never takes the link down
        reachable = simulator.cluster.pack(address).reachable
        seen_offline |= not reachable
        seen_back |= seen_offline and reachable
    assert seen_offline
    assert seen_back
    assert not list(_problem_logs(caplog))


async def test_bms_asleep(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A BMS that sleeps after 300 s without traffic swallows the first request after a quiet spell; the retry of
    that exchange finds it awake, so no poll fails and nothing goes unavailable."""
    before = harness.coordinator.link.stats.snapshot()
    harness.inject("asleep=300")
    await harness.poll()  # the first request of a run only wakes the BMS
    assert harness.coordinator.last_update_success
    for _ in range(5):
        await harness.poll()
        assert harness.coordinator.last_update_success
    for _ in range(2):
        await harness.poll(advance_s=400)  # HA was away: the BMS fell asleep
        assert harness.coordinator.last_update_success
        await harness.poll()
        assert harness.coordinator.last_update_success
    delta = _counter_delta(before, harness.coordinator.link.stats.snapshot())
    assert harness.simulator.injector.counts == {"asleep": 3}
    assert delta["timeouts"] == 3
    assert delta["requests"] == 2 * harness.polls + 3  # each swallowed request was repeated once
    assert harness.failed_polls == 0
    assert not list(_problem_logs(caplog))


async def test_late_status_reply_is_not_taken_for_analog_values(simulator: Simulator) -> None:
    """Found by scripts/soak: a late 0x44 broadcast reply that arrives while the client waits for the 0x42 answer
    decoded (without the request's selector) as one analog record of 4.096 V / 0 % and was shown for pack 1. With
    the selector the client sent, the PACE decoder refuses it."""
    driver = PaceDriver()
    responder = simulator.responder
    status = decode_frame(responder.respond(decode_frame(driver.status_request(1, ALL_PACKS))) or b"")
    with pytest.raises(FrameError):
        driver.decode_analog(status, ALL_PACKS)
    analog = decode_frame(responder.respond(decode_frame(driver.analog_request(1, ALL_PACKS))) or b"")
    with pytest.raises(FrameError):
        driver.decode_status(analog, ALL_PACKS)
    assert len(driver.decode_analog(analog, ALL_PACKS)) == len(simulator.addresses)
