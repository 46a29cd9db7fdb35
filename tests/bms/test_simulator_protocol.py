"""The simulator answers like the real packs: shapes and bytes from tests/data/captures.md, addressing per
docs/protocol.md §1.7."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest

from custom_components.lfp_bms.bms import family20 as f20
from custom_components.lfp_bms.bms import pace
from custom_components.lfp_bms.bms.driver import ALL_PACKS, ProtocolName
from custom_components.lfp_bms.bms.frame import Frame, RtnError, decode_frame
from custom_components.lfp_bms.bms.models import Condition
from custom_components.lfp_bms.bms.simulator import (
    ConstantProfile,
    LinkMode,
    Simulator,
    SimulatorConfig,
)
from custom_components.lfp_bms.bms.transport import LinkTimeout, SerialLink


@asynccontextmanager
async def serve(**options: object) -> AsyncIterator[tuple[Simulator, SerialLink]]:
    """A frozen-clock, unpaced simulator and a transport link to it."""
    options.setdefault("speed", 0)
    options.setdefault("paced", False)
    sim = Simulator(SimulatorConfig(**options))  # type: ignore[arg-type]
    await sim.start()
    link = SerialLink(sim.url, timeout=0.3)
    try:
        yield sim, link
    finally:
        await link.close()
        await sim.stop()


def lenid(frame: Frame) -> int:
    return int(frame.raw[9:13], 16) & 0xFFF


def length_field(frame: Frame) -> str:
    return frame.raw[9:13].decode()


DRIVER = pace.PaceDriver()
OK_EMPTY = b"~250046000000FDAF\r"


# --- PACE 0x42 / 0x44 shapes ------------------------------------------------------------------------------------


async def test_single_pack_replies_have_the_captured_lengths() -> None:
    async with serve(packs=1) as (sim, link):
        analog = await link.exchange(DRIVER.analog_request(1, 1))
        status = await link.exchange(DRIVER.status_request(1, 1))
    # tests/data/captures.md §A.1 #2 and #4: LENGTH F07A (0x42) and 004C (0x44) for 16 cells and 6 sensors.
    assert length_field(analog) == "F07A"
    assert length_field(status) == "004C"
    assert analog.adr == status.adr == 1
    (record,) = DRIVER.decode_analog(analog, 1)
    pack = sim.cluster.pack(1)
    assert record.cell_voltages_mv == pack.cell_mv
    assert record.voltage_v == pack.voltage_mv / 1000
    assert record.marker == 3
    assert len(record.temperatures_c) == 6


async def test_idle_status_matches_the_real_capture_byte_for_byte() -> None:
    # tests/data/captures.md §A.1 #4: a discharging pack (-2.25 A), no alarms, CFET/DFET on, control byte 00.
    async with serve(packs=1, profile=ConstantProfile(-2.25)) as (sim, link):
        sim.advance(10)
        frame = await link.exchange(DRIVER.status_request(1, 1))
    assert frame.raw == (
        b"~25014600004C000110000000000000000000000000000000000600000000000000000000000E000000000000EF3A\r"
    )


async def test_status_extra_byte_variant() -> None:
    async with serve(packs=1, status_extra_byte=True) as (_, link):
        frame = await link.exchange(DRIVER.status_request(1, 1))
    assert length_field(frame) == "E04E"  # docs/protocol.md §1.9.3: 78 characters with the extra byte
    assert len(DRIVER.decode_status(frame, 1)) == 1


@pytest.mark.parametrize("packs", [1, 2, 5, 16])
async def test_broadcast_size_scales_with_pack_count(packs: int) -> None:
    async with serve(packs=packs) as (sim, link):
        analog = await link.exchange(DRIVER.analog_request(1, ALL_PACKS))
        status = await link.exchange(DRIVER.status_request(1, ALL_PACKS))
    # INFOFLAG + count + 59-byte (0x42) / 36-byte (0x44) records, two characters per byte.
    assert lenid(analog) == 2 * (2 + 59 * packs)
    assert lenid(status) == 2 * (2 + 36 * packs)
    assert analog.info[1] == status.info[1] == packs
    records = DRIVER.decode_analog(analog, ALL_PACKS)
    assert [r.address for r in records] == list(range(1, packs + 1))
    assert [r.cell_voltages_mv for r in records] == [p.cell_mv for p in sim.cluster.packs]
    assert len(DRIVER.decode_status(status, ALL_PACKS)) == packs


async def test_tail_variants_per_pack() -> None:
    async with serve(packs=4, tails=[0, 1, 8, 14]) as (sim, link):
        frame = await link.exchange(DRIVER.analog_request(1, ALL_PACKS))
    records = DRIVER.decode_analog(frame, ALL_PACKS)
    assert [len(r.tail) for r in records] == [0, 1, 8, 14]
    assert [r.marker for r in records] == [3, 2, 2, 9]  # markers seen with each tail (docs/protocol.md §1.9.2)
    assert [r.soc_reported for r in records] == [False, True, True, True]
    for record, pack in zip(records, sim.cluster.packs, strict=True):
        assert record.soc_pct == pytest.approx(pack.soc_pct, abs=1)
    assert records[3].extra["port_voltage_v"] == records[3].voltage_v


@pytest.mark.parametrize(("cells", "temperatures", "tail", "single_lenid"), [(8, 4, 14, 0x06E), (15, 6, 0, 0x076)])
async def test_small_pack_layouts(cells: int, temperatures: int, tail: int, single_lenid: int) -> None:
    async with serve(packs=2, cells=cells, temperatures=temperatures, tails=tail) as (_, link):
        single = await link.exchange(DRIVER.analog_request(1, 1))
        broadcast = await link.exchange(DRIVER.analog_request(1, ALL_PACKS))
        status = await link.exchange(DRIVER.status_request(1, ALL_PACKS))
    # 8 cells, 4 sensors, 14-byte tail: LENID 0x06E = 41 fixed + 14 bytes, as the SolarMust capture
    # (docs/protocol.md §1.9.2);
    # 15 cells, 6 sensors: 2 + 57-byte standard record.
    assert lenid(single) == single_lenid
    records = DRIVER.decode_analog(broadcast, ALL_PACKS)
    assert [len(r.cell_voltages_mv) for r in records] == [cells, cells]
    assert [len(r.temperatures_c) for r in records] == [temperatures, temperatures]
    assert len(DRIVER.decode_status(status, ALL_PACKS)) == 2


async def test_offline_pack_in_broadcast_and_silent_on_rs485() -> None:
    async with serve(packs=3) as (sim, link):
        sim.cluster.set_online(2, False)
        frame = await link.exchange(DRIVER.analog_request(1, ALL_PACKS))
    records = DRIVER.decode_analog(frame, ALL_PACKS)
    assert [r.absent for r in records] == [False, True, False]
    # docs/protocol.md §1.12: all-zero cells and 0x0AAA (0.0 °C) temperatures.
    assert b"10" + b"0000" * 16 + b"06" + b"0AAA" * 6 in frame.raw
    async with serve(packs=3, link=LinkMode.RS485) as (sim, link):
        sim.cluster.set_online(2, False)
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(2, 2))
        assert DRIVER.decode_analog(await link.exchange(DRIVER.analog_request(3, 3)), 3)[0].address == 3


# --- addressing ---------------------------------------------------------------------------------------------------


async def test_rs232_master_relays_0x42_and_refuses_other_commands_for_slaves() -> None:
    async with serve(packs=3) as (sim, link):
        relay = await link.exchange(DRIVER.analog_request(1, 2))
        assert relay.adr == 1  # reply ADR = master
        assert DRIVER.decode_analog(relay, 2)[0].cell_voltages_mv == sim.cluster.pack(2).cell_mv
        count = await link.exchange(DRIVER.pack_count_request(1))
        assert pace.decode_pack_count(count.info) == 3
        for request in (
            DRIVER.request(2, pace.Cid2.MODEL),
            DRIVER.request(2, 0xD1),
            DRIVER.mos_request(2, charge=True, on=False),
            DRIVER.analog_request(2, 2),
        ):
            with pytest.raises(RtnError) as err:
                await link.exchange(request)
            assert err.value.rtn == 0x09
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(5, 5))  # no pack 5: nobody answers
        # ADR 00 reaches the directly connected master (all PbmsTools captures use it).
        identity = await DRIVER.read_identity(link, 0)
    assert identity.model == "P16S100A-1812-1.00"
    assert identity.bms_serial == sim.cluster.pack(1).bms_serial.strip()


async def test_rs485_every_pack_answers_itself() -> None:
    async with serve(packs=3, link=LinkMode.RS485) as (sim, link):
        serials = []
        for adr in (1, 2, 3):
            frame = await link.exchange(DRIVER.analog_request(adr, adr))
            assert frame.adr == adr
            assert DRIVER.decode_analog(frame, adr)[0].cell_voltages_mv == sim.cluster.pack(adr).cell_mv
            probe = await link.exchange(DRIVER.pack_count_request(adr))
            assert pace.decode_pack_count(probe.info) == (3 if adr == 1 else 1)
            serials.append((await DRIVER.read_identity(link, adr)).pack_serial)
            cell_ov = await link.exchange(DRIVER.request(adr, 0xD1))
            assert cell_ov.info == bytes.fromhex("010E100E740D340A")
        assert len(set(serials)) == 3
        for adr in (0, 4):
            with pytest.raises(LinkTimeout):
                await link.exchange(DRIVER.analog_request(adr, adr))


async def test_identity_is_deterministic_from_the_seed() -> None:
    async with serve(seed=7) as (_, link):
        first = await DRIVER.read_identity(link, 0)
    async with serve(seed=7) as (_, link):
        again = await DRIVER.read_identity(link, 0)
    async with serve(seed=8) as (_, link):
        other = await DRIVER.read_identity(link, 0)
    assert first == again
    assert first.pack_serial != other.pack_serial
    assert first.bms_serial is not None
    assert len(first.bms_serial) <= 20


async def test_model_reply_has_the_captured_layout() -> None:
    async with serve() as (_, link):
        frame = await link.exchange(DRIVER.request(1, pace.Cid2.MODEL))
    # tests/data/captures.md §A.1 #6 (same pack model): "P16S100A-1812-1.00 " + NUL.
    assert frame.raw == b"~25014600602850313653313030412D313831322D312E30302000F58E\r"


# --- parameters, switches, MOSFETs, clock, history -----------------------------------------------------------------

#: tests/data/captures.md §A.4: read request, read reply, write request; every write answers ~250046000000FDAF.
PARAMETER_CAPTURES = [
    ("~250046D10000FD9A", "~25004600F010010E100E740D340AFA35", "~250046D0F010010E100E740D340AFA21"),
    ("~250046D50000FD96", "~25004600F01001E100E740D2F00AFA24", "~250046D4F01001E10AE740D2F00AF9FB"),
    ("~250046D30000FD98", "~25004600F010010AF009C40B540AFA24", "~250046D2F010010AF009C40B540AFA0E"),
    ("~250046D70000FD94", "~25004600F01001AF009C40B5400AFA24", "~250046D6F01001AF009C40B5400AFA0A"),
    ("~250046D90000FD92", "~25004600400C010068006E0AFB1D", "~250046D8400C010068006E0AFB01"),
    ("~250046DB0000FD89", "~25004600400C01FF97FF920AFAD3", "~250046DA400C010069006E0AFAF7"),
    ("~250046E30000FD97", "~25004600400C009604009604FB32", "~250046E2A006009604FC4E"),
    ("~250046E50000FD95", "~25004600E0020CFD25", "~250046E4E0020CFD0C"),
    ("~250046B60000FD97", "~2500460080080D48001EFBE9", "~250046B580080D48001EFBD2"),
    ("~250046A00000FD9E", "~2500460080080C1C0005FBF3", "~250046A880080C1C0005FBDA"),
    ("~250046AF0000FD88", "~25004600600ADAC007D005FB60", "~250046AE600ADAC007D005FB3A"),
    ("~250046DD0000FD87", "~25004600501A010CA80CD00C9E0CDA0D020CD0F7BE", "~250046DC501A010CA80CD00C9E0CDA0D020CD0F797"),
    ("~250046DF0000FD85", "~25004600501A010AAA0A780AAA0A1409E20A14F7E5", "~250046DE501A010AAA0A780AAA0A1409E20A14F7BC"),
    ("~250046E10000FD99", "~25004600200E010E2E0EF60DFCFA5D", "~250046E0200E010E2E0EF60DFCFA48"),
    ("~250046E70000FD93", "~25004600501A0109E209B009E20D340D660D34F806", "~250046E6501A0109E209B009E20D340D660D34F7EB"),
    ("~250046ED0000FD86", "~25004600C0040064FCCE", "~250046EEC0040064FCA4"),
    ("~250046EB0000FD88", "~25004600A006131400FC6F", "~250046ECA006131400FC47"),
]


async def test_parameter_groups_read_and_write_as_captured() -> None:
    async with serve() as (_, link):
        for read_request, read_reply, _ in PARAMETER_CAPTURES:
            frame = await link.exchange(read_request.encode() + b"\r")
            assert frame.raw == read_reply.encode() + b"\r", read_request
        for _, _, write_request in PARAMETER_CAPTURES:
            frame = await link.exchange(write_request.encode() + b"\r")
            assert frame.raw == OK_EMPTY, write_request
        # The pack OV write set 57.61 V; the read-back shows it.
        frame = await link.exchange(b"~250046D50000FD96\r")
    assert pace_params_pack_ov(frame) == pytest.approx(57.61)


def pace_params_pack_ov(frame: Frame) -> float:
    from custom_components.lfp_bms.bms.pace_params import PackOverVoltage

    return PackOverVoltage.decode(frame.info).alarm_v


async def test_invalid_parameter_writes_are_refused() -> None:
    from custom_components.lfp_bms.bms import pace_params as pp

    bad_groups: list[pp.ParameterGroup] = [
        pp.CellOverVoltage(alarm_v=3.70, protect_v=3.60, release_v=3.38, delay_s=1.0),  # alarm above protect
        pp.CellOverVoltage(alarm_v=4.60, protect_v=4.70, release_v=3.38, delay_s=1.0),  # out of range
        pp.Balancing(start_v=3.4, delta_mv=5),
        pp.CellUnderVoltage(alarm_v=2.8, protect_v=2.5, release_v=2.9, delay_s=1.0, lead=0x07),  # foreign lead byte
    ]
    async with serve() as (sim, link):
        before = sim.cluster.pack(1).settings
        for group in bad_groups:
            with pytest.raises(RtnError) as err:
                await link.exchange(DRIVER.request(0, group.write_cid2, group.encode()))
            assert err.value.rtn == 0x09
        with pytest.raises(RtnError) as err:
            await link.exchange(DRIVER.request(0, 0xD0, b"\x01\x0e"))  # truncated write
        assert err.value.rtn in (0x05, 0x09)
        assert sim.cluster.pack(1).settings == before


async def test_switch_commands_replay_the_captured_sequence() -> None:
    # tests/data/captures.md §A.2, in the order that explains every control byte (bit 1 = charge MOS off by command).
    steps = [
        ("~25004699E0020DFD12", "~25004600C0040D01FCC3"),
        ("~25004699E0020CFD13", "~25004600C0040C00FCC5"),
        ("~2500469AE00201FD1D", None),
        ("~25004699E00206FD20", "~25004600C0040602FCD0"),
        ("~25004699E00207FD1F", "~25004600C0040722FCCD"),
        ("~25004699E0020AFD15", "~25004600C0040A22FCC3"),
        ("~25004699E0020BFD14", "~25004600C0040B32FCC1"),
        ("~2500469AE00200FD1E", None),
        ("~25004699E00209FD1D", "~25004600C0040938FCC4"),
        ("~25004699E00208FD1E", "~25004600C0040830FCCD"),
    ]
    async with serve() as (_, link):
        for request, expected in steps:
            frame = await link.exchange(request.encode() + b"\r")
            if expected is not None:
                assert frame.raw == expected.encode() + b"\r", request


async def test_mosfet_rules() -> None:
    async with serve(packs=1, profile=ConstantProfile(-20.0)) as (sim, link):
        sim.advance(5)
        # Discharging: the charge MOSFET cannot go off (docs/protocol.md §1.9.7).
        with pytest.raises(RtnError) as err:
            await link.exchange(DRIVER.mos_request(0, charge=True, on=False))
        assert err.value.rtn == 0x09
        sim.cluster.profile = ConstantProfile(0.0)
        sim.advance(5)
        frame = await link.exchange(DRIVER.mos_request(0, charge=True, on=False))
        assert pace.decode_mos_reply(frame) & (1 << pace.SystemBit.CHARGE_MOS) == 0
        # Both off is never allowed: refused with the system byte, exactly as captured (tests/data/captures.md §A.2).
        refused = await sim_exchange_raw(sim, DRIVER.mos_request(0, charge=False, on=False))
        assert refused == b"~25004609E00204FD2B\r"
        status = DRIVER.decode_status(await link.exchange(DRIVER.status_request(1, 1)), 1)[0]
        assert status.charge_mos_on is False
        assert status.discharge_mos_on is True


async def sim_exchange_raw(sim: Simulator, request: bytes) -> bytes | None:
    """The reply bytes straight from the responder (for refusals, which the transport turns into RtnError)."""
    return sim.responder.respond(decode_frame(request))


async def test_clock_write_read_and_drift() -> None:
    async with serve() as (sim, link):
        start = pace.decode_clock((await link.exchange(DRIVER.read_clock_request(0))).info)
        assert start == sim.config.physics.start_time
        written = await link.exchange(b"~250046B2400C1808140E0F25FAFC\r")  # tests/data/captures.md §A.3
        assert written.raw == OK_EMPTY
        now = pace.decode_clock((await link.exchange(DRIVER.read_clock_request(0))).info)
        assert now == datetime(2024, 8, 20, 14, 15, 37)
        sim.advance(86400)
        later = pace.decode_clock((await link.exchange(DRIVER.read_clock_request(0))).info)
        drift = (later - now).total_seconds() - 86400
        assert drift != 0
        assert abs(drift) <= 3  # a few ppm
        with pytest.raises(RtnError):
            await link.exchange(DRIVER.request(0, pace.Cid2.WRITE_CLOCK, bytes((24, 13, 1, 0, 0, 0))))


async def test_history_records_and_end_marker() -> None:
    async with serve(packs=1, profile=ConstantProfile(-10.0)) as (sim, link):
        sim.advance(2 * sim.config.physics.history_period_s)
        pack = sim.cluster.pack(1)
        newest = pace.decode_history((await link.exchange(DRIVER.history_request(0, 0))).info)
        assert newest is not None
        assert newest.cell_voltages_mv == pack.history[0].cell_voltages_mv
        assert newest.timestamp == pack.history[0].time
        assert newest.current_a == pytest.approx(-10.0)
        end = await link.exchange(DRIVER.history_request(0, len(pack.history)))
    assert end.raw == OK_EMPTY  # tests/data/captures.md §A.3 "end of history"


async def test_capacity_shutdown_and_errors() -> None:
    async with serve() as (sim, link):
        caps = pace.Capacities.decode((await link.exchange(DRIVER.capacities_request(0))).info)
        pack = sim.cluster.pack(1)
        assert caps.full_ah == pack.full_ah
        assert caps.design_ah == 100.0
        with pytest.raises(RtnError) as err:
            await link.exchange(DRIVER.request(0, 0x77))
        assert err.value.rtn == 0x04
        wrong_ver = (
            await link.exchange(pace.PaceDriver(ver=0x20).request(1, 0x42, b"\x01"), timeout=0.3) if False else None
        )
        assert wrong_ver is None
        reply = await sim_exchange_raw(sim, pace.PaceDriver(ver=0x20).analog_request(1, 1))
        assert reply is not None
        assert decode_frame(reply).rtn == 0x01
        assert decode_frame(reply).ver == 0x25
        assert (await link.exchange(DRIVER.shutdown_request(0))).raw == OK_EMPTY  # tests/data/captures.md §A.2
        with pytest.raises(LinkTimeout):
            await link.exchange(DRIVER.analog_request(1, 1))  # rebooting
        sim.advance(5)
        assert DRIVER.decode_analog(await link.exchange(DRIVER.analog_request(1, 1)), 1)


# --- the 0x20 family ----------------------------------------------------------------------------------------------


async def test_pylon_master_broadcast_and_bus() -> None:
    driver = f20.PylonDriver()
    async with serve(packs=3, protocol=ProtocolName.PYLON) as (sim, link):
        frame = await link.exchange(driver.analog_request(2, ALL_PACKS))
        records = driver.decode_analog(frame)
        assert [r.address for r in records] == [2, 3, 4]
        for record, pack in zip(records, sim.cluster.packs, strict=True):
            assert record.cell_voltages_mv == pack.cell_mv
            assert record.full_ah == pytest.approx(pack.full_ah, abs=0.001)
        statuses = driver.decode_status(await link.exchange(driver.status_request(2, ALL_PACKS)))
        assert len(statuses) == 3
        version = await link.exchange(f20.PylonDriver(ver=0x25).protocol_version_request(2))
        assert str(f20.decode_pylon_protocol_version(version)) == "2.0"
        limits = f20.decode_pylon_system_parameters((await link.exchange(driver.system_parameters_request(2))).info)
        assert limits.cell_high_voltage_v == 3.6
        identity = await driver.read_identity(link, 2)
        assert identity.model == "P16S100A-1"
        assert identity.pack_serial == sim.cluster.pack(2).pack_serial.strip()[:16]
        with pytest.raises(RtnError) as err:
            await link.exchange(driver.manufacturer_info_request(3))
        assert err.value.rtn == 0x90
    async with serve(packs=2, protocol=ProtocolName.PYLON, link=LinkMode.RS485) as (sim, link):
        for adr in (2, 3):
            (record,) = driver.decode_analog(await link.exchange(driver.analog_request(adr, adr)))
            assert record.address == adr
        with pytest.raises(LinkTimeout):
            await link.exchange(driver.analog_request(1, 1))


async def test_seplos_replies() -> None:
    driver = f20.SeplosDriver()
    async with serve(packs=2, protocol=ProtocolName.SEPLOS, link=LinkMode.RS485) as (sim, link):
        analog = await link.exchange(driver.analog_request(1, 1))
        status = await link.exchange(driver.status_request(1, 1))
        info = f20.decode_manufacturer_info((await link.exchange(driver.manufacturer_info_request(0))).info)
    assert length_field(analog) == "1096"  # docs/protocol.md §1.10.2: 75 bytes for 16 cells / 6 sensors
    assert lenid(status) == 2 * 49
    (record,) = driver.decode_analog(analog)
    pack = sim.cluster.pack(1)
    assert record.address == 1
    assert record.soc_pct == pytest.approx(pack.soc_pct, abs=0.1)
    assert record.voltage_v == pytest.approx(pack.voltage_mv / 1000, abs=0.01)
    assert driver.decode_status(status)[0].charge_mos_on is True
    assert info.device_name == "1101-SP16"


async def test_eg4_replies() -> None:
    driver = f20.Eg4Driver()
    async with serve(packs=2, protocol=ProtocolName.EG4, link=LinkMode.RS485, profile=ConstantProfile(10.0)) as (
        sim,
        link,
    ):
        sim.advance(3600)
        analog = await link.exchange(driver.analog_request(2, 2))
        status = await link.exchange(driver.status_request(2, 2))
        await link.exchange(driver.clock_write_request(2, datetime(2024, 9, 17, 11, 59, 31)))
        clock = f20.decode_eg4_clock((await link.exchange(driver.clock_read_request(2))).info)
    assert lenid(analog) == 0x0CA  # the EG4 document example: 101 bytes for 16 cells
    assert lenid(status) == 0x054
    (record,) = driver.decode_analog(analog)
    first, second = sim.cluster.packs
    assert record.current_a == pytest.approx(10.0 * second.full_ah / (first.full_ah + second.full_ah), abs=0.02)
    assert record.extra["cumulative_charge_ah"] == pytest.approx(sim.cluster.pack(2).energy.charged_ah, abs=0.05)
    assert clock == datetime(2024, 9, 17, 11, 59, 31)
    assert Condition.LOW_SOC not in driver.decode_status(status)[0].warnings
