"""PaceControl against the simulator: confirmed MOSFET/switch/parameter/clock writes, the BMS's refusals, validation
before anything is sent, read-back mismatches, writability, history, raw commands and the lock shared with polling."""

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from custom_components.lfp_bms.bms.client import ClusterClient, LinkConfig, NotWritableError
from custom_components.lfp_bms.bms.control import (
    GROUPS,
    MAX_HISTORY_RECORDS,
    CommandNotAllowedError,
    ControlRefusedError,
    PaceControl,
    ReadBackError,
    RefusalReason,
    Switch,
)
from custom_components.lfp_bms.bms.driver import ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import Frame, decode_frame
from custom_components.lfp_bms.bms.models import IDLE_CURRENT_A
from custom_components.lfp_bms.bms.pace import CLOCK_MAX, CLOCK_MIN, Cid2, PaceDriver
from custom_components.lfp_bms.bms.pace_params import (
    CAN_PROTOCOLS,
    PARAMETER_GROUPS,
    CellOverVoltage,
    ChargeDischargeUnderTemperature,
    ChargeOverCurrent,
    DischargeOverCurrent1,
    LimiterStartCurrent,
    ParameterError,
    ProtocolSelection,
    ShortCircuit,
    Sleep,
)
from custom_components.lfp_bms.bms.simulator import ConstantProfile, Simulator, SimulatorConfig, responders
from custom_components.lfp_bms.bms.transport import SerialLink

REPLY_TIMEOUT = 0.3


@asynccontextmanager
async def controlled(
    strategy: Strategy = Strategy.BROADCAST, **options: Any
) -> AsyncGenerator[tuple[Simulator, PaceControl]]:
    """A simulated cluster and a PaceControl over a link configured as detection would for `strategy`."""
    options = {"speed": 0, "paced": False, "seed": 3, **options}
    async with Simulator(SimulatorConfig(**options)) as sim:
        link = SerialLink(sim.url, timeout=REPLY_TIMEOUT)
        config = LinkConfig(
            protocol=ProtocolName.PACE25,
            ver=0x25,
            cid1=0x46,
            baudrate=9600,
            master_address=1,
            addresses=tuple(sim.addresses),
            strategy=strategy,
            # PbmsTools writes with ADR 00 on RS232 (tests/data/captures.md A.2).
            local_address=0 if strategy is not Strategy.BUS else 1,
        )
        try:
            yield sim, PaceControl(ClusterClient(link, PaceDriver(), config))
        finally:
            await link.close()


def requests_with(sim: Simulator, cid2: int) -> list[Frame]:
    """Every request the simulator answered with this CID2."""
    return [frame for frame in (decode_frame(s.request) for s in sim.sent) if frame.cid2 == cid2]


# -- MOSFETs ----------------------------------------------------------------------------------------------------


async def test_charge_mosfet_off_stops_charging_and_on_resumes() -> None:
    """0x9A off is read back from 0x44 and the physics stops taking charge current; on again resumes it."""
    async with controlled(packs=1, link="rs232-master", profile=ConstantProfile(20.0)) as (sim, control):
        sim.advance(30)
        pack = sim.cluster.pack(1)
        assert pack.current_a > 10  # charging before the command

        status = await control.set_mos(1, charge=True, on=False)
        assert status.charge_mos_on is False
        assert status.discharge_mos_on is True
        assert pack.charge_mos_command_on is False
        sim.advance(30)
        assert pack.current_a == 0.0

        status = await control.set_mos(1, charge=True, on=True)
        assert status.charge_mos_on is True
        sim.advance(30)
        assert pack.current_a > 10


async def test_both_mosfets_off_is_refused_with_its_reason() -> None:
    """The BMS never lets both MOSFETs go off (docs/protocol.md §1.9.7): RTN 09 becomes a typed refusal naming that
    rule."""
    async with controlled(packs=1) as (sim, control):
        await control.set_mos(1, charge=False, on=False)
        with pytest.raises(ControlRefusedError) as refused:
            await control.set_mos(1, charge=True, on=False)
        assert refused.value.reason is RefusalReason.BOTH_MOSFETS_OFF
        assert refused.value.rtn == 0x09
        assert sim.cluster.pack(1).charge_mos_command_on is True


async def test_charge_mosfet_not_off_while_discharging() -> None:
    """The charge MOSFET cannot be switched off while the pack discharges: refused as `current_flowing`."""
    async with controlled(packs=1, profile=ConstantProfile(-20.0)) as (sim, control):
        sim.advance(10)
        assert sim.cluster.pack(1).current_a <= -IDLE_CURRENT_A
        with pytest.raises(ControlRefusedError) as refused:
            await control.set_mos(1, charge=True, on=False)
        assert refused.value.reason is RefusalReason.CURRENT_FLOWING
        assert sim.cluster.pack(1).charge_mos_command_on is True


async def test_mosfet_on_blocked_by_protection_is_a_read_back_mismatch() -> None:
    """Accepted, but a charge-blocking protection keeps the MOSFET from conducting: the read-back says so."""
    async with controlled(packs=1) as (sim, control):
        await control.set_mos(1, charge=True, on=False)
        pack = sim.cluster.pack(1)
        highest = max(pack.cell_mv)
        pack.apply_settings(
            replace(
                pack.settings,
                cell_ov_alarm_mv=highest - 40,
                cell_ov_protect_mv=highest - 20,
                cell_ov_release_mv=highest - 60,
            )
        )
        sim.advance(10)
        with pytest.raises(ReadBackError) as mismatch:
            await control.set_mos(1, charge=True, on=True)
        assert mismatch.value.actual == "off"
        assert pack.charge_mos_command_on is True  # the command itself was taken


# -- 0x99 switches ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("switch", "state"),
    [
        (Switch.BUZZER, lambda p: p.buzzer_enabled),
        (Switch.LED_ALARM, lambda p: p.led_alarm_enabled),
        (Switch.LIMITER, lambda p: p.limiter_enabled),
        (Switch.LOW_GEAR, lambda p: p.limiter_low_gear),
    ],
)
async def test_switches_are_confirmed_by_the_control_byte(switch: Switch, state: Callable[[Any], bool]) -> None:
    """Each 0x99 switch goes on and off; the reply's control byte carries the new bit (docs/protocol.md §1.9.6)."""
    async with controlled(packs=1) as (sim, control):
        pack = sim.cluster.pack(1)
        assert state(pack) is False  # a real pack reads control byte 00 (tests/data/captures.md §A.1 #4)
        await control.set_switch(1, switch, True)
        assert state(pack) is True
        status = await control.read_status(1)
        assert {
            Switch.BUZZER: status.buzzer_enabled,
            Switch.LED_ALARM: status.led_alarm_enabled,
            Switch.LIMITER: status.limiter_enabled,
            Switch.LOW_GEAR: status.limiter_low_gear,
        }[switch] is True
        await control.set_switch(1, switch, False)
        assert state(pack) is False


async def test_switch_reply_without_the_bit_is_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A BMS that acknowledges the buzzer command but leaves the bit clear is caught."""
    async with controlled(packs=1) as (sim, control):
        monkeypatch.setattr(responders, "control_byte", lambda pack: 0x00)
        with pytest.raises(ReadBackError):
            await control.set_switch(1, Switch.BUZZER, True)
        assert sim.cluster.pack(1).buzzer_enabled is True  # the pack did switch; only its reply says otherwise


# -- parameter groups ------------------------------------------------------------------------------------------


async def test_every_group_reads_and_matches_the_bms() -> None:
    """Every group decodes from the simulated pack and names every group of the library."""
    assert set(GROUPS.values()) == set(PARAMETER_GROUPS)
    async with controlled(packs=1) as (sim, control):
        for group_type in GROUPS.values():
            group = await control.read_group(1, group_type)
            group.validate()
        cell_ov = await control.read_group(1, CellOverVoltage)
        settings = sim.cluster.pack(1).settings
        assert cell_ov.protect_v == settings.cell_ov_protect_mv / 1000


async def test_write_changes_one_field_and_reads_it_back(caplog: pytest.LogCaptureFixture) -> None:
    """Cell OV alarm 3.60 → 3.55 V: the other fields are kept, the BMS applies it, the write is logged."""
    async with controlled(packs=1) as (sim, control):
        caplog.set_level(logging.INFO, logger="custom_components.lfp_bms.bms.control")
        group = await control.write_values(1, CellOverVoltage, {"alarm_v": 3.55})
        assert group.alarm_v == pytest.approx(3.55)
        settings = sim.cluster.pack(1).settings
        assert settings.cell_ov_alarm_mv == 3550
        assert settings.cell_ov_protect_mv == 3700  # untouched (tests/data/captures.md §A.4 value)
        assert "cell_overvoltage before" in caplog.text
        assert "'alarm_v': 3.6" in caplog.text
        assert "'alarm_v': 3.55" in caplog.text


async def test_discharge_overcurrent_sign_round_trips() -> None:
    """DOC1 is read as negative and written as positive amperes (docs/protocol.md §1.9.12); a change survives the
    round trip."""
    async with controlled(packs=1) as (sim, control):
        group = await control.write_values(1, DischargeOverCurrent1, {"alarm_a": 100})
        assert group.alarm_a == 100
        assert sim.cluster.pack(1).settings.discharge_oc_alarm_a == 100


@pytest.mark.parametrize(
    ("group_type", "values", "reason", "field"),
    [
        (CellOverVoltage, {"protect_v": 3.5}, "order", "protect_v"),  # below the 3.60 V alarm
        (CellOverVoltage, {"release_v": 3.65}, "order", "release_v"),  # release above the alarm
        (CellOverVoltage, {"alarm_v": 3.555}, "off_step", "alarm_v"),
        (CellOverVoltage, {"alarm_v": 4.6}, "above_maximum", "alarm_v"),
        (ChargeDischargeUnderTemperature, {"charge_protect_c": -40.0}, "below_minimum", "charge_protect_c"),
        (ShortCircuit, {"delay_us": 310}, "off_step", "delay_us"),
        (LimiterStartCurrent, {"current_a": 50.5}, "off_step", "current_a"),
        (CellOverVoltage, {"lead": 2}, "unknown_field", "lead"),
        # Issue 17: NaN reached the encoder (ValueError), ∞ on an integer field round() (OverflowError).
        (CellOverVoltage, {"alarm_v": float("nan")}, "not_finite", "alarm_v"),
        (CellOverVoltage, {"protect_v": float("inf")}, "not_finite", "protect_v"),
        (ChargeOverCurrent, {"alarm_a": float("inf")}, "not_finite", "alarm_a"),
        (Sleep, {"delay_min": float("-inf")}, "not_finite", "delay_min"),
        (LimiterStartCurrent, {"current_a": float("nan")}, "not_finite", "current_a"),
    ],
)
async def test_invalid_values_are_rejected_before_sending(
    group_type: type[Any], values: dict[str, float], reason: str, field: str
) -> None:
    """Range, step, order and unknown fields fail validation; the write CID2 never reaches the BMS."""
    async with controlled(packs=1) as (sim, control):
        before = sim.cluster.pack(1).settings
        with pytest.raises(ParameterError) as invalid:
            await control.write_values(1, group_type, values)
        assert invalid.value.reason == reason
        assert invalid.value.field == field
        assert requests_with(sim, group_type.write_cid2) == []
        assert sim.cluster.pack(1).settings == before


async def test_write_not_applied_is_a_read_back_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A BMS that answers RTN 00 but keeps its old values is caught by the read-back."""
    async with controlled(packs=1) as (sim, control):
        pack = sim.cluster.pack(1)
        monkeypatch.setattr(pack, "apply_settings", lambda settings: None)
        with pytest.raises(ReadBackError) as mismatch:
            await control.write_values(1, CellOverVoltage, {"alarm_v": 3.5})
        assert mismatch.value.expected["alarm_v"] == pytest.approx(3.5)  # type: ignore[index]
        assert mismatch.value.actual["alarm_v"] == pytest.approx(3.6)  # type: ignore[index]
        assert len(requests_with(sim, CellOverVoltage.write_cid2)) == 1


async def test_protocol_selection_and_limiter_current() -> None:
    """The protocol codes change one at a time; an unknown code read from the BMS is kept as it is."""
    async with controlled(packs=1) as (sim, control):
        pack = sim.cluster.pack(1)
        pack.apply_settings(replace(pack.settings, rs485_protocol=0x2A))
        assert 0x2A not in CAN_PROTOCOLS
        selection = await control.write_values(1, ProtocolSelection, {"can_protocol": 0x01})
        assert selection == ProtocolSelection(can_protocol=0x01, rs485_protocol=0x2A, selection_type=0x00)
        assert pack.settings.can_protocol == 0x01
        limiter = await control.write_values(1, LimiterStartCurrent, {"current_a": 60})
        assert limiter.current_a == 60
        assert pack.settings.limiter_start_a == 60


# -- writability, lock, shutdown, clock, history, raw ----------------------------------------------------------


async def test_slave_behind_master_is_not_writable() -> None:
    """Through the RS232 master only pack 1 is writable: a write to pack 2 raises and sends nothing."""
    async with controlled(packs=2) as (sim, control):
        with pytest.raises(NotWritableError):
            await control.set_mos(2, charge=True, on=False)
        with pytest.raises(NotWritableError):
            await control.write_values(2, CellOverVoltage, {"alarm_v": 3.5})
        assert sim.sent == type(sim.sent)(maxlen=sim.sent.maxlen)  # not a single exchange


async def test_every_pack_on_a_bus_is_writable() -> None:
    """On RS485 each pack is addressed itself: a write to pack 2 reaches pack 2 only."""
    async with controlled(Strategy.BUS, packs=2, link="rs485") as (sim, control):
        await control.write_values(2, CellOverVoltage, {"alarm_v": 3.5})
        assert sim.cluster.pack(2).settings.cell_ov_alarm_mv == 3500
        assert sim.cluster.pack(1).settings.cell_ov_alarm_mv == 3600


async def test_write_and_read_back_hold_the_polling_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every exchange of a write sequence runs with the client's lock held, which read_all also takes."""
    async with controlled(packs=1) as (_sim, control):
        client = control.client
        held: list[bool] = []
        exchange = client.link.exchange

        async def spy(request: bytes, *, timeout: float | None = None) -> Frame:
            held.append(client.lock.locked())
            return await exchange(request, timeout=timeout)

        monkeypatch.setattr(client.link, "exchange", spy)
        await control.set_mos(1, charge=False, on=False)
        await control.write_values(1, CellOverVoltage, {"alarm_v": 3.5})
        assert held
        assert all(held)
        held.clear()
        async with client.lock:
            pass
        await client.read_all()
        assert held
        assert all(held)


async def test_shutdown_reboots_the_pack() -> None:
    """0x9C with INFO 01 (docs/protocol.md §1.9.8): the simulated pack goes silent for its reboot."""
    async with controlled(packs=1) as (sim, control):
        await control.shutdown(1)
        assert [frame.info for frame in requests_with(sim, Cid2.SHUTDOWN)] == [b"\x01"]
        assert sim.cluster.pack(1).reboot_until > sim.cluster.time_s


async def test_clock_set_and_read_back() -> None:
    """0xB2 then 0xB1: the BMS clock shows the time written (docs/protocol.md §1.9.9)."""
    async with controlled(packs=1) as (sim, control):
        moment = datetime(2026, 3, 4, 5, 6, 7)
        assert await control.read_clock(1) != moment
        assert await control.set_clock(1, moment) == moment
        sim.advance(60)
        assert (await control.read_clock(1) - moment).total_seconds() == pytest.approx(60, abs=1)


@pytest.mark.parametrize("moment", [datetime(1999, 12, 31, 23, 59, 59), datetime(2256, 1, 1), datetime(2300, 6, 1)])
async def test_clock_outside_its_encoding_is_refused_before_sending(moment: datetime) -> None:
    """Issue 17: year 1999 or 2300 raised ValueError from the encoder. The PACE clock carries the year as
    year − 2000 in one byte (2000-2255): anything else is a ParameterError and nothing is sent."""
    async with controlled(packs=1) as (sim, control):
        with pytest.raises(ParameterError) as invalid:
            await control.set_clock(1, moment)
        assert invalid.value.reason == "wire_range"
        assert requests_with(sim, Cid2.WRITE_CLOCK) == []
        assert await control.set_clock(1, CLOCK_MAX) == CLOCK_MAX  # the bounds themselves are fine
        assert await control.set_clock(1, CLOCK_MIN) == CLOCK_MIN


async def test_history_is_bounded_and_decoded() -> None:
    """Records newest first with the pack's cell count; the walk stops at the end of the history."""
    async with controlled(packs=1, profile=ConstantProfile(20.0)) as (sim, control):
        sim.advance(3 * 1800)  # a periodic record every 30 simulated minutes
        stored = len(sim.cluster.pack(1).history)
        records = await control.read_history(1, 2)
        assert len(records) == 2
        assert records[0].timestamp >= records[1].timestamp
        assert len(records[0].cell_voltages_mv) == 16
        everything = await control.read_history(1, stored + 5)
        assert len(everything) == stored
        assert await control.read_history(1, 3, start=stored) == []
        sent = len(sim.sent)
        # The index is 16 bits (docs/protocol.md §1.9.10): the last record reachable is 0xFFFF.
        assert await control.read_history(1, 1, start=0xFFFF) == []
        assert len(sim.sent) == sent + 1
        for count, start, reason, field, limit in (
            (0, 0, "below_minimum", "count", 1),
            (MAX_HISTORY_RECORDS + 1, 0, "above_maximum", "count", MAX_HISTORY_RECORDS),
            (1, -1, "below_minimum", "start", 0),
            # The last record asked for must have an index <= 0xFFFF: the highest start is 0x10000 - count.
            (2, 0xFFFF, "above_maximum", "start", 0xFFFE),
            (MAX_HISTORY_RECORDS, 0x10000 - MAX_HISTORY_RECORDS + 1, "above_maximum", "start", 0xFE70),
        ):
            with pytest.raises(ParameterError) as invalid:
                await control.read_history(1, count, start=start)
            error = invalid.value
            assert (error.reason, error.field) == (reason, field)
            assert error.value == (count if field == "count" else start)
            assert (error.minimum if reason == "below_minimum" else error.maximum) == limit
        assert len(sim.sent) == sent + 1  # refused before anything was sent


async def test_raw_command_reads_freely_and_writes_only_when_allowed() -> None:
    """A read CID2 always goes; a write CID2 needs allow_write, and a refusal comes back as its RTN."""
    async with controlled(packs=1) as (sim, control):
        reply = await control.raw_command(1, Cid2.READ_CLOCK, b"", allow_write=False)
        assert reply.rtn == 0
        assert len(reply.info) == 6
        with pytest.raises(CommandNotAllowedError):
            await control.raw_command(1, Cid2.SHUTDOWN, b"\x01", allow_write=False)
        assert requests_with(sim, Cid2.SHUTDOWN) == []
        refused = await control.raw_command(1, Cid2.SHUTDOWN, b"\x02", allow_write=True)
        assert refused.rtn == 0x09


async def test_control_needs_a_pace_link() -> None:
    """Other protocol families have no such commands."""
    async with controlled(packs=1) as (_sim, control):
        client = control.client
        pylon = ClusterClient(client.link, PaceDriver(), client.config)
        pylon.driver = object()  # type: ignore[assignment]
        with pytest.raises(TypeError):
            PaceControl(pylon)
