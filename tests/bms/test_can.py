"""Pylon LV CAN codecs (docs/protocol.md §3) and the simulated master's CAN port.

There is no CAN capture in tests/data/captures.md, so the frames below are written by hand from the tables of §3.2/§3.3
(field, byte position, type, scale) with the values in their comments.
"""

import asyncio

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.lfp_bms.bms.can import (
    CORE_IDS,
    AlarmFlags,
    CanFlag,
    CanState,
    CellExtremes,
    ChargeLimits,
    EnergyCounters,
    Manufacturer,
    Measurements,
    Requests,
    StateOfCharge,
    Text,
    decode,
    encode,
    fold,
)
from custom_components.lfp_bms.bms.frame import FrameError
from custom_components.lfp_bms.bms.models import Condition, Fault
from custom_components.lfp_bms.bms.simulator import Cluster, ConstantProfile, PackSpec
from custom_components.lfp_bms.bms.simulator.can_bus import CanSimulator, CanSimulatorConfig, cluster_frames


def test_charge_limits() -> None:
    # CVL 53.2 V = 532 = 0x0214, CCL 74.0 A = 740 = 0x02E4, DCL 148.0 A = 0x05C8, DVL 48.0 V = 480 = 0x01E0.
    frame = decode(0x351, bytes.fromhex("1402E402C805E001"))
    assert frame == ChargeLimits(
        charge_voltage_v=53.2, charge_current_a=74.0, discharge_current_a=148.0, discharge_voltage_v=48.0
    )
    # Pylon V1.2 defines only bytes 0-5: no discharge voltage limit.
    short = decode(0x351, bytes.fromhex("1402E402C805"))
    assert isinstance(short, ChargeLimits)
    assert short.discharge_voltage_v is None


def test_negative_discharge_limit_is_a_magnitude() -> None:
    # §3.2: one emulator build sent DCL negative (-148.0 A = 0xFA38); the limit is its magnitude.
    frame = decode(0x351, bytes.fromhex("1402E40238FA"))
    assert isinstance(frame, ChargeLimits)
    assert frame.discharge_current_a == 148.0


def test_soc_and_measurements() -> None:
    assert decode(0x355, bytes.fromhex("5100640000000000")) == StateOfCharge(soc_pct=81, soh_pct=100)
    # 52.40 V = 5240 = 0x1478; -12.3 A = -123 = 0xFF85 (discharge); 23.5 °C = 235 = 0x00EB.
    assert decode(0x356, bytes.fromhex("781485FFEB00")) == Measurements(
        voltage_v=52.4, current_a=-12.3, temperature_c=23.5
    )


def test_alarm_flags_tables() -> None:
    # Byte 0 bit 1 (cell over-voltage protection) and bit 0 (unused in P1); byte 1 bit 0 (charge over-current);
    # byte 3 bit 3 (internal communication fail); 2 modules; 'P' 'N'; online bitmap 0b110 = packs 1 and 2.
    frame = decode(0x359, bytes([0x03, 0x01, 0x00, 0x08, 2, 0x50, 0x4E, 0x06]))
    assert isinstance(frame, AlarmFlags)
    assert frame.protection_flags == {CanFlag.CELL_OVERVOLTAGE, CanFlag.CHARGE_OVERCURRENT}
    assert frame.warning_flags == {CanFlag.INTERNAL_COMMUNICATION}
    assert frame.unknown_protection_bits == 0x0001  # kept visible, still a protection
    assert frame.unknown_warning_bits == 0
    assert frame.module_count == 2
    assert frame.online_addresses == (1, 2)
    state = fold(CanState(), 0x359, frame.encode())
    assert state.protection_active
    assert state.warning_active
    assert state.protections == {Condition.CELL_OVERVOLTAGE, Condition.CHARGE_OVERCURRENT}
    assert state.faults == {Fault.COMMUNICATION}


def test_unknown_bits_alone_are_a_protection_and_a_warning() -> None:
    # YamBMS puts charge over-current in bit 7 of bytes 1 and 3 (§3.2): no table names it, it still counts.
    state = fold(CanState(), 0x359, bytes([0x00, 0x80, 0x00, 0x80, 1]))
    assert state.protection_active
    assert state.warning_active
    assert state.protections == frozenset()
    assert state.alarms is not None
    assert state.alarms.online_addresses is None  # byte 7 not sent


def test_cell_temperature_follows_the_current_direction() -> None:
    # P1 bit 3: cell over-temperature; while charging (+5.0 A) it is the charge limit that applies.
    state = fold(CanState(), 0x359, bytes([0x08, 0, 0, 0, 1]))
    charging = fold(state, 0x356, bytes.fromhex("78143200EB00"))
    assert charging.protections == {Condition.CHARGE_OVERTEMPERATURE}
    discharging = fold(state, 0x356, bytes.fromhex("7814CEFFEB00"))
    assert discharging.protections == {Condition.DISCHARGE_OVERTEMPERATURE}


def test_requests_and_manufacturer() -> None:
    # Table R: bit 7 charge enable, bit 6 discharge enable, bit 5 force charge I, bit 3 full charge.
    assert decode(0x35C, bytes([0xE8, 0])) == Requests(
        charge_enable=True,
        discharge_enable=True,
        force_charge_1=True,
        force_charge_2=False,
        full_charge=True,
        raw=0xE8,
    )
    assert decode(0x35E, b"PYLON   ") == Manufacturer(name="PYLON")
    with pytest.raises(FrameError):
        decode(0x35E, bytes([0x50, 0xFF, 0x01]))


def test_extensions() -> None:
    # 0x354 capacities 0.1 Ah: 300 / 186 as in the Discover capture of ai-republic issue #107 (§3.3).
    capacity = fold(CanState(), 0x354, bytes.fromhex("2C01BA00"))
    assert capacity.capacity is not None
    assert (capacity.capacity.nominal_ah, capacity.capacity.remaining_ah) == (30.0, 18.6)
    # 0x370 (Seplos): max temp 31.5 °C, min temp 24.0 °C, max cell 3350 mV, min cell 3310 mV.
    extremes = decode(0x370, bytes.fromhex("3B01F000160DEE0C"))
    assert extremes == CellExtremes(min_cell_mv=3310, max_cell_mv=3350, min_temperature_c=24.0, max_temperature_c=31.5)
    # 0x373: 3310 mV, 3350 mV, 297 K, 304 K.
    kelvin = fold(CanState(), 0x373, bytes.fromhex("EE0C160D29013001"))
    assert kelvin.cell_extremes is not None
    assert kelvin.cell_extremes.min_temperature_c == pytest.approx(23.85)
    assert kelvin.cell_extremes.max_cell_mv == 3350
    # 0x378: 1234.56 kWh charged, 1000.00 kWh discharged (u32, 0.01 kWh).
    assert decode(0x378, (123456).to_bytes(4, "little") + (100000).to_bytes(4, "little")) == EnergyCounters(
        charged_kwh=1234.56, discharged_kwh=1000.0
    )
    assert fold(CanState(), 0x379, bytes([0xC8, 0x00])).installed_capacity is not None
    counts = fold(CanState(), 0x372, bytes.fromhex("0300000001000100"))
    assert counts.module_counts is not None
    assert (counts.module_counts.online, counts.module_counts.offline) == (3, 1)


def test_discover_ascii_in_extension_ids() -> None:
    """Discover batteries send "Discover" / " AES" in 0x370 / 0x371 (§3.3): text, not cell extremes."""
    assert decode(0x370, b"Discover") == Text(frame_id=0x370, text="Discover")
    state = fold(fold(CanState(), 0x370, b"Discover"), 0x371, b" AES    ")
    assert state.cell_extremes is None
    assert state.texts == {0x370: "Discover", 0x371: " AES"}


def test_short_frames_and_unknown_ids() -> None:
    with pytest.raises(FrameError):
        decode(0x356, bytes(3))
    with pytest.raises(FrameError):
        decode(0x351, bytes(9))
    assert decode(0x123, bytes(8)) is None
    assert fold(CanState(), 0x305, bytes(8)) == CanState()


def test_complete_needs_the_core_frames() -> None:
    state = CanState()
    frames = {
        0x351: "1402E402C805",
        0x355: "51006400",
        0x356: "7814000000EB",
        0x359: "0000000002504E",
    }
    for arbitration_id, data in frames.items():
        assert not state.complete
        state = fold(state, arbitration_id, bytes.fromhex(data))
    assert state.complete
    assert state.seen == CORE_IDS
    assert state.power_w == 0.0


#: Every ID of docs/protocol.md §3.2 and §3.3 that the library decodes (design.md §2 #9).
DECODED_IDS = (0x351, 0x354, 0x355, 0x356, 0x359, 0x35A, 0x35C, 0x35E, 0x35F, 0x370, 0x371, 0x372, 0x373, 0x378, 0x379)


@settings(max_examples=200, deadline=None)
@given(arbitration_id=st.sampled_from(DECODED_IDS), data=st.binary(max_size=10))
def test_bad_input_raises_only_frame_error(arbitration_id: int, data: bytes) -> None:
    try:
        state = fold(CanState(), arbitration_id, data)
    except FrameError:
        return
    assert arbitration_id in state.seen


@settings(max_examples=100, deadline=None)
@given(
    voltage=st.integers(0, 0x7FFF),
    current=st.integers(-0x8000, 0x7FFF),
    temperature=st.integers(-400, 1000),
)
def test_measurements_round_trip(voltage: int, current: int, temperature: int) -> None:
    frame = Measurements(voltage_v=voltage / 100, current_a=current / 10, temperature_c=temperature / 10)
    arbitration_id, data = encode(frame)
    assert decode(arbitration_id, data) == frame


def _cluster(current_a: float = -20.0) -> Cluster:
    cluster = Cluster([PackSpec(address=1), PackSpec(address=2)], seed=3, profile=ConstantProfile(current_a))
    cluster.advance(120)
    return cluster


def test_simulated_broadcast_matches_the_physics() -> None:
    cluster = _cluster()
    state = CanState()
    for frame in cluster_frames(cluster):
        state = fold(state, *encode(frame))
    packs = cluster.packs
    assert state.complete
    assert state.module_count == 2
    assert state.voltage_v == pytest.approx(sum(p.voltage_mv for p in packs) / 2000, abs=0.006)
    assert state.current_a == pytest.approx(cluster.current_a, abs=0.051)
    assert state.cell_extremes is not None
    assert state.cell_extremes.min_cell_mv == min(mv for p in packs for mv in p.cell_mv)
    assert state.requests is not None
    assert state.requests.charge_enable
    assert state.requests.discharge_enable
    assert state.manufacturer == Manufacturer(name="PYLON")
    assert state.online_addresses == (1, 2)


def test_offline_master_sends_nothing() -> None:
    cluster = _cluster()
    for pack in cluster.packs:
        cluster.set_online(pack.address, False)
    assert cluster_frames(cluster) == []


async def test_virtual_bus_and_keep_alive_requirement() -> None:
    """The battery broadcasts on the virtual channel, and falls silent without 0x305 when told to need it."""
    sim = CanSimulator(
        _cluster(), CanSimulatorConfig(virtual_channel="bms-test-keepalive", period_s=0.05, keep_alive_timeout_s=0.3)
    )
    inverter = can.Bus(interface="virtual", channel="bms-test-keepalive")
    await sim.start()
    try:
        await sim.wait_broadcast()
        heard = {m.arbitration_id for m in iter(lambda: inverter.recv(0), None)}
        assert heard >= CORE_IDS | {0x35C, 0x35E}
        while sim.sending:  # nobody sends 0x305: the BMS stops after keep_alive_timeout_s
            await sim.wait_tick()
        inverter.send(can.Message(arbitration_id=0x305, data=bytes(8), is_extended_id=False))
        await sim.wait_broadcast()
        assert sim.stats.keep_alives == 1
        assert sim.received[-1] == (0x305, bytes(8))
    finally:
        await sim.stop()
        inverter.shutdown()


async def test_slcan_adapter_protocol(socket_enabled: None) -> None:
    """The emulated adapter answers the Lawicel commands and streams frames only while open at the right rate."""
    sim = CanSimulator(_cluster(), CanSimulatorConfig(slcan=True, period_s=0.05))
    await sim.start()
    host, port = sim.url.removeprefix("socket://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"S6\rV\rJ\r")
        assert await reader.readuntil(b"\r") == b"\r"
        assert await reader.readuntil(b"\r") == b"V1013\r"
        assert await reader.readexactly(1) == b"\a"  # unknown command: BEL, no CR
        writer.write(b"O\r")
        assert await reader.readuntil(b"\r") == b"\r"
        line = await reader.readuntil(b"\r")
        assert line.startswith(b"t35")  # t<id3><len><data>
        arbitration_id, length = int(line[1:4], 16), int(line[4:5])
        assert decode(arbitration_id, bytes.fromhex(line[5 : 5 + 2 * length].decode())) is not None
        writer.write(b"t30580000000000000000\r")
        while (await reader.readuntil(b"\r")) != b"z\r":
            pass
        assert sim.stats.keep_alives == 1
    finally:
        writer.close()
        await sim.stop()
