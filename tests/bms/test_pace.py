"""PACE 0x25 driver: tests/data/captures.md A.1-A.3 and B, synthetic multi-pack frames, round trips and fuzzing."""

import contextlib
import dataclasses
from datetime import datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from custom_components.lfp_bms.bms.driver import ALL_PACKS, Exchange, ProtocolName, Strategy
from custom_components.lfp_bms.bms.frame import BmsError, Frame, FrameError, RtnError, decode_frame, encode_frame
from custom_components.lfp_bms.bms.models import Condition, Fault, PackAnalog, PackStatus
from custom_components.lfp_bms.bms.pace import (
    PROTECT_1,
    PROTECT_2,
    WARN_1,
    WARN_2,
    Capacities,
    HistoryRecord,
    PaceDriver,
    SwitchCommand,
    SwitchReply,
    decode_analog_info,
    decode_clock,
    decode_history,
    decode_model,
    decode_mos_reply,
    decode_pack_count,
    decode_serials,
    decode_status_info,
    encode_analog_info,
    encode_clock,
    encode_history,
    encode_pack_count,
    encode_status_info,
    encode_text,
    make_pack_analog,
)

DRIVER = PaceDriver()

A1_ANALOG = (
    b"~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC60CC7060B9B0B990B990B990BB30BBC"
    b"FF1FCCCD12D303286A008C2710E1E4\r"
)
A1_STATUS = b"~25014600004C000110000000000000000000000000000000000600000000000000000000000E000000000000EF3A\r"
B1_ANALOG = (
    b"~25004600F07A0001100D420D140D130D130D130D130D130D130D110D120D130D110D110D120D100D13060BB70BB70BB80BB60BB30BBD"
    b"0000D155128E03138800001388E3AC\r"
)
B2_ANALOG = (
    b"~25024600F07A0002100D370CE50D080CED0D060CE70D1D0CEB0CF80CFA0CFB0D070CE10CF10CC20D06060BAA0BAC0BA60BA70BA90BB2"
    b"0000CF9406D603138800001388E261\r"
)
A3_HISTORY = (
    b"~25004600709018021D020038100D970D990D9A0D990D990D970D990D980D990D980D800D980D980D990D980D98060B740B750B770B76"
    b"0B710B79FF6ED9D7286A286A0000000000060043FFFFFFFFDDE3\r"
)
OK_EMPTY = b"~250046000000FDAF\r"


# --- driver basics ----------------------------------------------------------------------------------------------


def test_driver_identity() -> None:
    assert DRIVER.name is ProtocolName.PACE25
    assert (DRIVER.ver, DRIVER.cid1) == (0x25, 0x46)
    assert DRIVER.strategies == (Strategy.BROADCAST, Strategy.RELAY, Strategy.BUS)


@pytest.mark.parametrize(
    ("request_frame", "expected"),
    [
        (DRIVER.analog_request(0x01, 0x01), b"~25014642E00201FD30\r"),  # A.1 #1
        (DRIVER.status_request(0x01, 0x01), b"~25014644E00201FD2E\r"),  # A.1 #3
        (DRIVER.capacities_request(0x00), b"~250046A60000FD98\r"),  # A.1 #9
        (DRIVER.pack_count_request(0x01), b"~250146900000FDA5\r"),  # A.1 #11
        (DRIVER.analog_request(0x00, 0x01), b"~25004642E00201FD31\r"),  # B.1
        (DRIVER.analog_request(0x00, ALL_PACKS), b"~25004642E002FFFD06\r"),  # B.1
        (DRIVER.status_request(0x00, 0x01), b"~25004644E00201FD2F\r"),  # B.1
        (DRIVER.status_request(0x00, ALL_PACKS), b"~25004644E002FFFD04\r"),  # B.1
        (DRIVER.pack_count_request(0x02), b"~250246900000FDA4\r"),  # B.2
        (DRIVER.analog_request(0x02, 0x02), b"~25024642E00202FD2E\r"),  # B.2
        (DRIVER.status_request(0x02, 0x02), b"~25024644E00202FD2C\r"),  # B.2
        (DRIVER.request(0x01, 0xC1), b"~250146C10000FD9A\r"),  # A.1 #5
        (DRIVER.request(0x01, 0xC2), b"~250146C20000FD99\r"),  # A.1 #7
        (DRIVER.shutdown_request(0x00), b"~2500469CE00201FD1B\r"),  # A.2
        (DRIVER.mos_request(0x00, charge=True, on=True), b"~2500469AE00200FD1E\r"),  # A.2
        (DRIVER.mos_request(0x00, charge=True, on=False), b"~2500469AE00201FD1D\r"),
        (DRIVER.mos_request(0x00, charge=False, on=True), b"~2500469BE00200FD1D\r"),
        (DRIVER.mos_request(0x00, charge=False, on=False), b"~2500469BE00201FD1C\r"),
        (DRIVER.read_clock_request(0x00), b"~250046B10000FD9C\r"),  # A.3
        (DRIVER.write_clock_request(0x00, datetime(2024, 8, 20, 14, 15, 37)), b"~250046B2400C1808140E0F25FAFC\r"),
        (DRIVER.history_request(0x00, 0x018F), b"~250046A1C004018FFCA7\r"),  # A.3
    ],
)
def test_requests_match_captures(request_frame: bytes, expected: bytes) -> None:
    assert request_frame == expected


# --- A.1 monitoring ---------------------------------------------------------------------------------------------


def test_a1_analog_reply() -> None:
    """A.1 #2: values as decoded in tests/data/captures.md."""
    (pack,) = DRIVER.decode_analog(decode_frame(A1_ANALOG))
    assert pack.address == 1
    assert len(pack.cell_voltages_mv) == 16
    assert min(pack.cell_voltages_mv) == 3269
    assert max(pack.cell_voltages_mv) == 3272
    assert pack.temperatures_c == (24.1, 23.9, 23.9, 23.9, 26.5, 27.4)
    assert pack.cell_temperatures_c == (24.1, 23.9, 23.9, 23.9)
    assert pack.mosfet_temperature_c == 26.5
    assert pack.environment_temperature_c == 27.4
    assert pack.current_a == -2.25
    assert pack.voltage_v == 52.429
    assert pack.remaining_ah == 48.19
    assert pack.marker == 3
    assert pack.full_ah == 103.46
    assert pack.cycles == 140
    assert pack.design_ah == 100.00
    assert pack.tail == b""
    # No tail: SOC and SOH derived from the capacities, SOH clamped (103.46 Ah full > 100 Ah design).
    assert not pack.soc_reported
    assert pack.soc_pct == pytest.approx(48.19 / 103.46 * 100, abs=0.05)
    assert pack.soh_pct == 100.0
    assert not pack.absent


def test_a1_analog_reencodes_byte_for_byte() -> None:
    frame = decode_frame(A1_ANALOG)
    assert encode_analog_info(DRIVER.decode_analog(frame), 0x01) == frame.info


def test_a1_status_reply() -> None:
    """A.1 #4: no alarms; instruction 0x0E = CFET on, DFET on, bit 3 (observed meaning: discharging)."""
    (status,) = DRIVER.decode_status(decode_frame(A1_STATUS))
    assert status.address == 1
    assert status.protections == frozenset()
    assert status.warnings == frozenset()
    assert status.faults == frozenset()
    assert status.charge_mos_on is True
    assert status.discharge_mos_on is True
    assert status.discharging is True  # the same capture's analog reply shows -2.25 A
    assert status.charging is False
    assert status.heater_on is False
    assert status.fully_charged is False
    assert status.balancing_cells == ()
    assert (status.buzzer_enabled, status.led_alarm_enabled, status.limiter_enabled) == (False, False, False)
    assert status.limiter_low_gear is False
    assert status.cell_alarm_codes == (0,) * 16
    assert status.temperature_alarm_codes == (0,) * 6
    assert len(status.raw) == 36
    frame = decode_frame(A1_STATUS)
    assert encode_status_info([status], 0x01) == frame.info


def test_a1_model() -> None:
    """A.1 #6: "P16S100A-1812-1.00 " + NUL."""
    info = decode_frame(b"~25014600602850313653313030412D313831322D312E30302000F58E\r").info
    assert decode_model(info) == "P16S100A-1812-1.00"


def test_a1_serial() -> None:
    """A.1 #8. tests/data/captures.md prints the decode as "P1812101380309D", but the frame bytes carry no "P":
    the bytes (the capture) win."""
    info = decode_frame(
        b"~25014600B05031383132313031333830333039442020202020202020202020202020202020202020202020202020EE0F\r"
    ).info
    assert len(info) == 40
    assert decode_serials(info) == ("1812101380309D", None)


def test_serials_40_chars_split_into_bms_and_pack() -> None:
    """docs/protocol.md §1.9.4 example (I-NK36)."""
    info = b"2108434A1302209Z    SQLR051208103C409329"
    assert decode_serials(info) == ("2108434A1302209Z", "SQLR051208103C409329")
    assert decode_serials(encode_text("2108434A1302209Z", 20)) == ("2108434A1302209Z", None)


def test_a1_capacities() -> None:
    """A.1 #10: remaining 62040 mAh, actual 103460 mAh, design 100000 mAh."""
    info = decode_frame(b"~25004600400C183C286A2710FB0E\r").info
    caps = Capacities.decode(info)
    assert (caps.remaining_ah, caps.full_ah, caps.design_ah) == (62.04, 103.46, 100.00)
    assert caps.encode() == info


def test_a1_pack_count() -> None:
    """A.1 #12: 2 packs."""
    info = decode_frame(b"~25014600E00202FD35\r").info
    assert decode_pack_count(info) == 2
    assert encode_pack_count(2) == info


class FakeExchange(Exchange):
    """Answers by CID2 from a table of reply frames (RTN checked like a real link)."""

    def __init__(self, replies: dict[int, bytes]) -> None:
        self.replies = replies
        self.sent: list[bytes] = []

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        self.sent.append(request)
        return decode_frame(self.replies[decode_frame(request).cid2]).check_rtn()


async def test_read_identity_from_captures() -> None:
    link = FakeExchange(
        {
            0xC1: b"~25014600602850313653313030412D313831322D312E30302000F58E\r",
            0xC2: (
                b"~25014600B05031383132313031333830333039442020202020202020202020202020202020202020202020202020EE0F\r"
            ),
        }
    )
    identity = await DRIVER.read_identity(link, 0x01)
    assert link.sent == [b"~250146C10000FD9A\r", b"~250146C20000FD99\r"]
    assert identity.model == "P16S100A-1812-1.00"
    assert identity.bms_serial == "1812101380309D"
    assert identity.serial == "1812101380309D"


async def test_read_identity_tolerates_refused_serial() -> None:
    link = FakeExchange(
        {
            0xC1: b"~25014600602850313653313030412D313831322D312E30302000F58E\r",
            0xC2: encode_frame(0x25, 0x01, 0x46, 0x04),
        }
    )
    identity = await DRIVER.read_identity(link, 0x01)
    assert identity.model == "P16S100A-1812-1.00"
    assert identity.bms_serial is None


# --- A.2 switches, MOSFETs, shutdown ----------------------------------------------------------------------------

SWITCHES = [
    # command, captured request, captured reply, (buzzer, led, limiter, low gear) from the control byte
    (SwitchCommand.BUZZER_ON, b"~25004699E0020DFD12\r", b"~25004600C0040D01FCC3\r", 0x01),
    (SwitchCommand.BUZZER_OFF, b"~25004699E0020CFD13\r", b"~25004600C0040C00FCC5\r", 0x00),
    (SwitchCommand.LED_OFF, b"~25004699E00206FD20\r", b"~25004600C0040602FCD0\r", 0x02),
    (SwitchCommand.LED_ON, b"~25004699E00207FD1F\r", b"~25004600C0040722FCCD\r", 0x22),
    (SwitchCommand.LIMITER_OFF, b"~25004699E0020AFD15\r", b"~25004600C0040A22FCC3\r", 0x22),
    (SwitchCommand.LIMITER_ON, b"~25004699E0020BFD14\r", b"~25004600C0040B32FCC1\r", 0x32),
    (SwitchCommand.LOW_GEAR, b"~25004699E00209FD1D\r", b"~25004600C0040938FCC4\r", 0x38),
    (SwitchCommand.HIGH_GEAR, b"~25004699E00208FD1E\r", b"~25004600C0040830FCCD\r", 0x30),
]


@pytest.mark.parametrize(("command", "request_frame", "reply", "control"), SWITCHES)
def test_a2_switch(command: SwitchCommand, request_frame: bytes, reply: bytes, control: int) -> None:
    assert DRIVER.switch_request(0x00, command) == request_frame
    info = decode_frame(reply).info
    decoded = SwitchReply.decode(info)
    assert decoded == SwitchReply(command=command, control=control)
    assert decoded.encode() == info


def test_a2_switch_control_bits_follow_pbmstools() -> None:
    """tests/data/captures.md A.2: bit0 buzzer, bit3 low gear, bit4 limiter, bit5 LED (1 = enabled)."""
    replies = {cmd: SwitchReply.decode(decode_frame(reply).info) for cmd, _, reply, _ in SWITCHES}
    assert replies[SwitchCommand.BUZZER_ON].buzzer_enabled
    assert not replies[SwitchCommand.BUZZER_OFF].buzzer_enabled
    assert replies[SwitchCommand.LED_ON].led_alarm_enabled
    assert not replies[SwitchCommand.LED_OFF].led_alarm_enabled
    assert replies[SwitchCommand.LIMITER_ON].limiter_enabled
    assert not replies[SwitchCommand.LIMITER_OFF].limiter_enabled
    assert replies[SwitchCommand.LOW_GEAR].limiter_low_gear
    assert not replies[SwitchCommand.HIGH_GEAR].limiter_low_gear


@pytest.mark.parametrize(
    ("reply", "state"),
    [(b"~25004600E00226FD30\r", 0x26), (b"~25004600E00224FD32\r", 0x24), (b"~25004600E00204FD34\r", 0x04)],
)
def test_a2_mos_replies(reply: bytes, state: int) -> None:
    assert decode_mos_reply(decode_frame(reply)) == state


def test_a2_mos_refused() -> None:
    """Discharge MOSFET off while charging: RTN 09."""
    with pytest.raises(RtnError) as caught:
        decode_mos_reply(decode_frame(b"~25004609E00204FD2B\r"))
    assert caught.value.rtn == 0x09


def test_a2_shutdown_reply() -> None:
    frame = decode_frame(OK_EMPTY)
    assert frame.check_rtn().info == b""


# --- A.3 clock and history --------------------------------------------------------------------------------------


def test_a3_clock() -> None:
    info = decode_frame(b"~25004600400C180815051D1FFB10\r").info
    assert decode_clock(info) == datetime(2024, 8, 21, 5, 29, 31)
    assert encode_clock(datetime(2024, 8, 21, 5, 29, 31)) == info
    written = decode_frame(b"~250046B2400C1808140E0F25FAFC\r").info
    assert decode_clock(written) == datetime(2024, 8, 20, 14, 15, 37)


def test_a3_clock_rejects_impossible_date() -> None:
    with pytest.raises(FrameError):
        decode_clock(bytes((24, 2, 30, 0, 0, 0)))


def test_a3_history_record() -> None:
    info = decode_frame(A3_HISTORY).info
    record = decode_history(info)
    assert record is not None
    assert record.timestamp == datetime(2024, 2, 29, 2, 0, 56)
    assert record.current_a == -1.46
    assert record.voltage_v == 55.767
    assert (record.remaining_ah, record.full_ah) == (103.46, 103.46)
    assert len(record.cell_voltages_mv) == 16
    assert (max(record.cell_voltages_mv), min(record.cell_voltages_mv)) == (3482, 3456)
    assert record.cell_voltages_mv[0] == 3479
    assert record.cell_voltages_mv[-1] == 3480
    assert record.temperatures_c == (20.2, 20.3, 20.5, 20.4, 19.9, 20.7)
    assert record.trailer == bytes.fromhex("000000000006 0043 FFFFFFFF")
    assert encode_history(record) == info


def test_a3_end_of_history() -> None:
    assert decode_history(decode_frame(OK_EMPTY).info) is None
    assert encode_history(None) == b""


# --- B vendor-document examples ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [ALL_PACKS, None])
def test_b1_broadcast_reply(command: int | None) -> None:
    """B.1: answer to INFO FF, pack count 1."""
    (pack,) = DRIVER.decode_analog(decode_frame(B1_ANALOG), command)
    assert pack.address == 1
    assert pack.cell_voltages_mv[:3] == (3394, 3348, 3347)
    assert pack.cell_voltages_mv[-2:] == (3344, 3347)
    assert pack.temperatures_c == (26.9, 26.9, 27.0, 26.8, 26.5, 27.5)
    assert pack.mosfet_temperature_c == 26.5
    assert pack.environment_temperature_c == 27.5
    assert pack.current_a == 0
    assert pack.voltage_v == 53.589
    assert pack.remaining_ah == 47.50
    assert pack.marker == 3
    assert pack.full_ah == 50.00
    assert pack.cycles == 0
    assert pack.design_ah == 50.00
    assert pack.soc_pct == 95.0
    assert encode_analog_info([pack], ALL_PACKS) == decode_frame(B1_ANALOG).info


def test_b2_single_address_reply() -> None:
    """B.2: COMMAND 02 echoed; frame ADR 02."""
    frame = decode_frame(B2_ANALOG)
    (pack,) = DRIVER.decode_analog(frame)
    assert pack.address == 2
    assert pack.cell_voltages_mv[0] == 3383
    assert pack.cell_voltages_mv[-1] == 3334
    assert pack.temperatures_c == (25.6, 25.8, 25.2, 25.3, 25.5, 26.4)
    assert (pack.mosfet_temperature_c, pack.environment_temperature_c) == (25.5, 26.4)
    assert pack.current_a == 0
    assert pack.voltage_v == 53.140
    assert pack.remaining_ah == 17.50
    assert (pack.marker, pack.full_ah, pack.cycles, pack.design_ah) == (3, 50.00, 0, 50.00)
    assert DRIVER.decode_analog(frame, 0x02) == [pack]
    assert encode_analog_info([pack], 0x02) == frame.info


def test_address_zero_falls_back_to_frame_adr() -> None:
    info = bytearray(decode_frame(B2_ANALOG).info)
    info[1] = 0x00
    (pack,) = decode_analog_info(bytes(info), adr=0x05)
    assert pack.address == 5


# --- synthetic multi-pack frames --------------------------------------------------------------------------------


def _pack(address: int, cells: list[int], soc_byte: int | None = None, tail_len: int = 0) -> PackAnalog:
    tail = b""
    if tail_len == 1:
        tail = bytes((soc_byte or 0,))
    elif tail_len == 8:
        tail = bytes((soc_byte or 0,)) + (10000).to_bytes(2, "big") * 3 + bytes((97,))
    elif tail_len == 14:
        tail = bytes((soc_byte or 0,)) + (20000).to_bytes(2, "big") * 4 + bytes((99,)) + (53120).to_bytes(2, "big")
        tail += b"\x00\x00"
    return make_pack_analog(
        address=address,
        cell_voltages_mv=cells,
        temperatures_c=[25.0, 25.1, 25.2, 25.3, 30.0, 22.0] if any(cells) else [-273.0] * 6,
        current_a=-12.34 if any(cells) else 0.0,
        voltage_v=sum(cells) / 1000,
        remaining_ah=80.0 if any(cells) else 0.0,
        full_ah=100.0 if any(cells) else 0.0,
        design_ah=100.0 if any(cells) else 0.0,
        cycles=42,
        marker={0: 3, 1: 2, 8: 2, 14: 9}[tail_len],
        tail=tail,
    )


def test_broadcast_with_mixed_tails_and_absent_pack() -> None:
    cells = [3300 + i for i in range(16)]
    packs = [
        _pack(1, cells, 16, tail_len=1),  # SOC 16 % = a tail byte equal to the cell count
        _pack(2, cells, 55, tail_len=8),
        _pack(3, [0] * 16),
        _pack(4, cells, 62, tail_len=14),
        _pack(5, cells),
    ]
    info = encode_analog_info(packs, ALL_PACKS)
    frame = decode_frame(encode_frame(0x25, 0x01, 0x46, 0x00, info))
    decoded = DRIVER.decode_analog(frame)
    assert decoded == packs
    assert DRIVER.decode_analog(frame, ALL_PACKS) == packs
    assert [p.address for p in decoded] == [1, 2, 3, 4, 5]
    assert [p.soc_pct for p in decoded] == [16.0, 55.0, 0.0, 62.0, 80.0]
    assert [p.soc_reported for p in decoded] == [True, True, False, True, False]
    assert decoded[1].soh_pct == 97.0
    assert decoded[3].soh_pct == 99.0
    assert decoded[3].extra == {"port_voltage_v": 53.12}
    assert decoded[2].absent
    assert decoded[2].cells is not None
    assert decoded[2].temperatures_c == (-273.0,) * 6


def test_tail_given_explicitly_overrides_pack_tail() -> None:
    cells = [3300] * 16
    packs = [_pack(1, cells), _pack(2, cells)]
    info = encode_analog_info(packs, ALL_PACKS, tails=[b"\x32", b""])
    decoded = decode_analog_info(info, adr=1, command=ALL_PACKS)
    assert decoded[0].tail == b"\x32"
    assert decoded[0].soc_pct == 50.0
    assert decoded[1] == packs[1]


def test_broadcast_count_mismatch_raises() -> None:
    cells = [3300] * 16
    info = bytearray(encode_analog_info([_pack(1, cells), _pack(2, cells)], ALL_PACKS))
    info[1] = 3
    with pytest.raises(FrameError):
        decode_analog_info(bytes(info), adr=1, command=ALL_PACKS)


@pytest.mark.parametrize(
    ("temps", "cell_temps", "mosfet", "environment"),
    [
        ((20.0, 21.0, 22.0, 23.0), (20.0, 21.0, 22.0, 23.0), None, None),
        ((20.0, 21.0, 22.0, 23.0, 30.0, 25.0, 24.0, 26.0), (20.0, 21.0, 22.0, 23.0, 24.0, 26.0), 30.0, 25.0),
    ],
)
def test_temperature_assignment(
    temps: tuple[float, ...], cell_temps: tuple[float, ...], mosfet: float | None, environment: float | None
) -> None:
    """4 sensors (8S packs): all cells; 8 sensors: doc positions T5/T6 kept, the rest are cells
    (docs/protocol.md §5 #14)."""
    pack = make_pack_analog(
        address=1,
        cell_voltages_mv=[3300] * 8,
        temperatures_c=temps,
        current_a=0,
        voltage_v=26.4,
        remaining_ah=10,
        full_ah=100,
        design_ah=100,
        cycles=0,
    )
    assert (pack.cell_temperatures_c, pack.mosfet_temperature_c, pack.environment_temperature_c) == (
        cell_temps,
        mosfet,
        environment,
    )
    assert decode_analog_info(encode_analog_info([pack], 0x01), adr=1) == [pack]


def test_status_bits_from_the_document_tables() -> None:
    """A hand-built record (tables A-G of docs/protocol.md §1.9.3) rather than one made by the encoder."""
    record = bytes(
        [
            4,  # cells
            0x00,
            0x02,
            0x01,
            0xF0,
            2,  # temperature sensors
            0x00,
            0x02,
            0x02,  # charge-current alarm: above
            0x00,  # pack-voltage alarm
            0x01,  # discharge-current alarm
            0b0100_0001,  # protect 1: cell OV, short circuit
            0b1001_0000,  # protect 2: MOSFET OT, Fully
            0b1010_0110,  # system: CFET, DFET, bit 5 charging, bit 7 heater
            0b0011_1001,  # control: buzzer, low gear, limiter, LED
            0b0000_0101,  # fault: charge MOSFET, NTC
            0b0000_0001,  # balance 1: cell 1
            0b1000_0000,  # balance 2: cell 16
            0b0010_0000,  # warn 1: discharge OC
            0b1000_0001,  # warn 2: charge OT, low SOC
        ]
    )
    (status,) = decode_status_info(b"\x00\x03" + record, adr=0)
    assert status.address == 3
    assert status.cell_alarm_codes == (0x00, 0x02, 0x01, 0xF0)
    assert status.temperature_alarm_codes == (0x00, 0x02)
    assert (status.charge_current_alarm_code, status.pack_voltage_alarm_code) == (2, 0)
    assert status.discharge_current_alarm_code == 1
    assert status.protections == {
        Condition.CELL_OVERVOLTAGE,
        Condition.SHORT_CIRCUIT,
        Condition.MOSFET_OVERTEMPERATURE,
    }
    assert status.fully_charged is True
    assert status.warnings == {Condition.DISCHARGE_OVERCURRENT, Condition.CHARGE_OVERTEMPERATURE, Condition.LOW_SOC}
    assert status.faults == {Fault.CHARGE_MOSFET, Fault.TEMPERATURE_SENSOR}
    assert (status.charge_mos_on, status.discharge_mos_on) == (True, True)
    assert (status.charging, status.discharging, status.heater_on) == (True, False, True)
    assert (status.buzzer_enabled, status.limiter_low_gear, status.limiter_enabled, status.led_alarm_enabled) == (
        True,
        True,
        True,
        True,
    )
    assert status.balancing_cells == (1, 16)
    assert status.raw == record
    assert encode_status_info([status], 0x03) == b"\x00\x03" + record


def test_status_broadcast_with_extra_bytes() -> None:
    """Extra byte 0x11 between and 0x00 after packs, as in the 2-pack broadcast of docs/protocol.md §1.9.3."""
    single = decode_frame(A1_STATUS).info[2:]
    info = b"\x00\x02" + single + b"\x11" + single + b"\x00"
    statuses = decode_status_info(info, adr=1)
    assert [s.address for s in statuses] == [1, 2]
    assert statuses[0].raw == single + b"\x11"
    assert statuses[1].raw == single + b"\x00"
    assert all(s.charge_mos_on for s in statuses)
    stripped = [dataclasses.replace(s, raw=b"") for s in statuses]
    reencoded = decode_status_info(encode_status_info(stripped, ALL_PACKS, extra_byte=True), adr=1, command=ALL_PACKS)
    assert [s.raw[-1] for s in reencoded] == [0, 0]
    assert [dataclasses.replace(s, raw=b"") for s in reencoded] == stripped


def test_single_status_with_extra_byte_is_37_bytes() -> None:
    info = decode_frame(A1_STATUS).info + b"\x00"
    (status,) = decode_status_info(info, adr=1)
    assert len(status.raw) == 37


def test_status_encoder_rejects_unrepresentable_conditions() -> None:
    status = PackStatus(address=1, warnings=frozenset({Condition.CELL_IMBALANCE}), cell_alarm_codes=(0,))
    with pytest.raises(ValueError, match="cannot carry"):
        encode_status_info([status], 0x01)


# --- property tests ---------------------------------------------------------------------------------------------

_cell_mv = st.one_of(st.just(0), st.integers(1000, 4500))


@st.composite
def _analog_packs(draw: st.DrawFn) -> list[PackAnalog]:
    count = draw(st.integers(1, 4))
    n = draw(st.integers(1, 24))
    t = draw(st.integers(0, 8))
    packs = []
    for index in range(count):
        tail_len = draw(st.sampled_from((0, 1, 8, 14)))
        tail = draw(st.binary(min_size=tail_len, max_size=tail_len))
        packs.append(
            make_pack_analog(
                address=index + 1,
                cell_voltages_mv=draw(st.lists(_cell_mv, min_size=n, max_size=n)),
                temperatures_c=[
                    (raw - 2730) / 10 for raw in draw(st.lists(st.integers(0, 0xFFFF), min_size=t, max_size=t))
                ],
                current_a=draw(st.integers(-0x8000, 0x7FFF)) / 100,
                voltage_v=draw(st.integers(0, 0xFFFF)) / 1000,
                remaining_ah=draw(st.integers(0, 0xFFFF)) / 100,
                full_ah=draw(st.integers(0, 0xFFFF)) / 100,
                design_ah=draw(st.integers(0, 0xFFFF)) / 100,
                cycles=draw(st.integers(0, 0xFFFF)),
                marker=draw(st.integers(0, 0xFF)),
                tail=tail,
            )
        )
    return packs


@settings(max_examples=200, deadline=None)
@given(_analog_packs())
def test_analog_round_trip(packs: list[PackAnalog]) -> None:
    assert decode_analog_info(encode_analog_info(packs, ALL_PACKS), adr=1, command=ALL_PACKS) == packs
    single = dataclasses.replace(packs[0], address=7)
    assert decode_analog_info(encode_analog_info([single], 7), adr=1) == [single]


_CONDITIONS_P = sorted({*PROTECT_1.values(), *PROTECT_2.values()})
_CONDITIONS_W = sorted({*WARN_1.values(), *WARN_2.values()})


@st.composite
def _statuses(draw: st.DrawFn) -> list[PackStatus]:
    count = draw(st.integers(1, 4))
    n = draw(st.integers(1, 16))
    t = draw(st.integers(0, 8))
    codes = st.integers(0, 0xFF)
    flag = st.booleans()
    return [
        PackStatus(
            address=index + 1,
            protections=frozenset(draw(st.sets(st.sampled_from(_CONDITIONS_P)))),
            warnings=frozenset(draw(st.sets(st.sampled_from(_CONDITIONS_W)))),
            faults=frozenset(draw(st.sets(st.sampled_from(list(Fault)[:8])))),
            charge_mos_on=draw(flag),
            discharge_mos_on=draw(flag),
            charging=draw(flag),
            discharging=draw(flag),
            heater_on=draw(flag),
            fully_charged=draw(flag),
            balancing_cells=tuple(sorted(draw(st.sets(st.integers(1, n))))),
            buzzer_enabled=draw(flag),
            led_alarm_enabled=draw(flag),
            limiter_enabled=draw(flag),
            limiter_low_gear=draw(flag),
            cell_alarm_codes=tuple(draw(st.lists(codes, min_size=n, max_size=n))),
            temperature_alarm_codes=tuple(draw(st.lists(codes, min_size=t, max_size=t))),
            charge_current_alarm_code=draw(codes),
            pack_voltage_alarm_code=draw(codes),
            discharge_current_alarm_code=draw(codes),
        )
        for index in range(count)
    ]


@settings(max_examples=200, deadline=None)
@given(_statuses(), st.booleans())
def test_status_round_trip(statuses: list[PackStatus], extra_byte: bool) -> None:
    info = encode_status_info(statuses, ALL_PACKS, extra_byte=extra_byte)
    decoded = decode_status_info(info, adr=1, command=ALL_PACKS)
    assert [dataclasses.replace(s, raw=b"") for s in decoded] == statuses
    assert b"\x00" + bytes((len(statuses),)) + b"".join(s.raw for s in decoded) == info


def test_history_round_trip() -> None:
    record = HistoryRecord(
        timestamp=datetime(2031, 12, 31, 23, 59, 58),
        cell_voltages_mv=(3300, 3301),
        temperatures_c=(-10.5, 40.0),
        current_a=50.25,
        voltage_v=6.601,
        remaining_ah=1.5,
        full_ah=2.5,
        trailer=bytes(range(12)),
    )
    assert decode_history(encode_history(record)) == record


_DECODERS = [
    lambda info: decode_analog_info(info, adr=1),
    lambda info: decode_analog_info(info, adr=1, command=ALL_PACKS),
    lambda info: decode_status_info(info, adr=1),
    lambda info: decode_status_info(info, adr=1, command=ALL_PACKS),
    decode_history,
    decode_clock,
    decode_pack_count,
    Capacities.decode,
    SwitchReply.decode,
    decode_model,
    decode_serials,
]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, len(_DECODERS) - 1))
def test_random_info_raises_only_bms_errors(info: bytes, which: int) -> None:
    with contextlib.suppress(BmsError):
        _DECODERS[which](info)


_CAPTURED_INFOS = [decode_frame(f).info for f in (A1_ANALOG, A1_STATUS, B1_ANALOG, B2_ANALOG, A3_HISTORY)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_CAPTURED_INFOS), st.data(), st.integers(0, len(_DECODERS) - 1))
def test_mutated_info_raises_only_bms_errors(info: bytes, data: st.DataObject, which: int) -> None:
    mutated = bytearray(info)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(("flip", "cut", "insert")))
        index = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if action == "flip" and mutated:
            mutated[index] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del mutated[index:]
        else:
            mutated[index:index] = data.draw(st.binary(min_size=1, max_size=16))
    assume(bytes(mutated) != info)
    with contextlib.suppress(BmsError):
        _DECODERS[which](bytes(mutated))
