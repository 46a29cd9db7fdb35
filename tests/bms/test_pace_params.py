"""PACE parameter groups against tests/data/captures.md A.4, validation rules and round trips."""

import contextlib
import dataclasses

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from custom_components.lfp_bms.bms.driver import Exchange
from custom_components.lfp_bms.bms.frame import BmsError, Frame, FrameError, decode_frame
from custom_components.lfp_bms.bms.pace import PaceDriver
from custom_components.lfp_bms.bms.pace_params import (
    CAN_PROTOCOLS,
    GROUP_BY_READ_CID2,
    GROUP_BY_WRITE_CID2,
    PARAMETER_GROUPS,
    PROTOCOL_TYPES,
    RS485_PROTOCOLS,
    Balancing,
    CellOverVoltage,
    CellUnderVoltage,
    ChargeDischargeOverTemperature,
    ChargeDischargeUnderTemperature,
    ChargeOverCurrent,
    DischargeOverCurrent1,
    DischargeOverCurrent2,
    EnvironmentTemperature,
    FullChargeLowSoc,
    LimiterStartCurrent,
    MosfetOverTemperature,
    PackOverVoltage,
    PackUnderVoltage,
    ParameterError,
    ParameterGroup,
    ParameterRule,
    ProtocolSelection,
    Relation,
    ShortCircuit,
    Sleep,
    read_group,
)

DRIVER = PaceDriver()

#: tests/data/captures.md A.4: group, read request, read reply, write request, values stated by the source
#: (natural units).
A4: list[tuple[type[ParameterGroup], bytes, bytes, bytes, ParameterGroup]] = [
    (
        CellOverVoltage,
        b"~250046D10000FD9A\r",
        b"~25004600F010010E100E740D340AFA35\r",
        b"~250046D0F010010E100E740D340AFA21\r",
        CellOverVoltage(alarm_v=3.60, protect_v=3.70, release_v=3.38, delay_s=1.0),
    ),
    (
        PackOverVoltage,
        b"~250046D50000FD96\r",
        b"~25004600F01001E100E740D2F00AFA24\r",
        b"~250046D4F01001E10AE740D2F00AF9FB\r",
        PackOverVoltage(alarm_v=57.6, protect_v=59.2, release_v=54.0, delay_s=1.0),
    ),
    (
        CellUnderVoltage,
        b"~250046D30000FD98\r",
        b"~25004600F010010AF009C40B540AFA24\r",
        b"~250046D2F010010AF009C40B540AFA0E\r",
        CellUnderVoltage(alarm_v=2.8, protect_v=2.5, release_v=2.9, delay_s=1.0),
    ),
    (
        PackUnderVoltage,
        b"~250046D70000FD94\r",
        b"~25004600F01001AF009C40B5400AFA24\r",
        b"~250046D6F01001AF009C40B5400AFA0A\r",
        PackUnderVoltage(alarm_v=44.8, protect_v=40.0, release_v=46.4, delay_s=1.0),
    ),
    (
        ChargeOverCurrent,
        b"~250046D90000FD92\r",
        b"~25004600400C010068006E0AFB1D\r",
        b"~250046D8400C010068006E0AFB01\r",
        ChargeOverCurrent(alarm_a=104, protect_a=110, delay_s=1.0),
    ),
    (
        DischargeOverCurrent1,
        b"~250046DB0000FD89\r",
        b"~25004600400C01FF97FF920AFAD3\r",
        b"~250046DA400C010069006E0AFAF7\r",
        DischargeOverCurrent1(alarm_a=105, protect_a=110, delay_s=1.0),
    ),
    (
        DischargeOverCurrent2,
        b"~250046E30000FD97\r",
        b"~25004600400C009604009604FB32\r",
        b"~250046E2A006009604FC4E\r",
        DischargeOverCurrent2(protect_a=150, delay_s=0.100),
    ),
    (
        ShortCircuit,
        b"~250046E50000FD95\r",
        b"~25004600E0020CFD25\r",
        b"~250046E4E0020CFD0C\r",
        ShortCircuit(delay_us=300),
    ),
    (
        Balancing,
        b"~250046B60000FD97\r",
        b"~2500460080080D48001EFBE9\r",
        b"~250046B580080D48001EFBD2\r",
        Balancing(start_v=3.40, delta_mv=30),
    ),
    (
        Sleep,
        b"~250046A00000FD9E\r",
        b"~2500460080080C1C0005FBF3\r",
        b"~250046A880080C1C0005FBDA\r",
        Sleep(cell_v=3.10, delay_min=5),
    ),
    (
        FullChargeLowSoc,
        b"~250046AF0000FD88\r",
        b"~25004600600ADAC007D005FB60\r",
        b"~250046AE600ADAC007D005FB3A\r",
        FullChargeLowSoc(full_charge_v=56.0, full_charge_current_a=2.0, low_soc_pct=5),
    ),
    (
        ChargeDischargeOverTemperature,
        b"~250046DD0000FD87\r",
        b"~25004600501A010CA80CD00C9E0CDA0D020CD0F7BE\r",
        b"~250046DC501A010CA80CD00C9E0CDA0D020CD0F797\r",
        ChargeDischargeOverTemperature(
            charge_alarm_c=51,
            charge_protect_c=55,
            charge_release_c=50,
            discharge_alarm_c=56,
            discharge_protect_c=60,
            discharge_release_c=55,
        ),
    ),
    (
        ChargeDischargeUnderTemperature,
        b"~250046DF0000FD85\r",
        b"~25004600501A010AAA0A780AAA0A1409E20A14F7E5\r",
        b"~250046DE501A010AAA0A780AAA0A1409E20A14F7BC\r",
        ChargeDischargeUnderTemperature(
            charge_alarm_c=0,
            charge_protect_c=-5,
            charge_release_c=0,
            discharge_alarm_c=-15,
            discharge_protect_c=-20,
            discharge_release_c=-15,
        ),
    ),
    (
        MosfetOverTemperature,
        b"~250046E10000FD99\r",
        b"~25004600200E010E2E0EF60DFCFA5D\r",
        b"~250046E0200E010E2E0EF60DFCFA48\r",
        MosfetOverTemperature(alarm_c=90, protect_c=110, release_c=85),
    ),
    (
        EnvironmentTemperature,
        b"~250046E70000FD93\r",
        b"~25004600501A0109E209B009E20D340D660D34F806\r",
        b"~250046E6501A0109E209B009E20D340D660D34F7EB\r",
        EnvironmentTemperature(
            under_alarm_c=-20,
            under_protect_c=-25,
            under_release_c=-20,
            over_alarm_c=65,
            over_protect_c=70,
            over_release_c=65,
        ),
    ),
    (
        LimiterStartCurrent,
        b"~250046ED0000FD86\r",
        b"~25004600C0040064FCCE\r",
        b"~250046EEC0040064FCA4\r",
        LimiterStartCurrent(current_a=100),
    ),
    (
        ProtocolSelection,
        b"~250046EB0000FD88\r",
        b"~25004600A006131400FC6F\r",
        b"~250046ECA006131400FC47\r",
        ProtocolSelection(can_protocol=0x13, rs485_protocol=0x14, selection_type=0x00),
    ),
]
_IDS = [row[0].__name__ for row in A4]


@pytest.mark.parametrize(("group", "read_req", "read_reply", "write_req", "expected"), A4, ids=_IDS)
def test_a4_read_request(
    group: type[ParameterGroup], read_req: bytes, read_reply: bytes, write_req: bytes, expected: ParameterGroup
) -> None:
    assert DRIVER.request(0x00, group.read_cid2) == read_req


@pytest.mark.parametrize(("group", "read_req", "read_reply", "write_req", "expected"), A4, ids=_IDS)
def test_a4_read_reply_decodes_to_source_values(
    group: type[ParameterGroup], read_req: bytes, read_reply: bytes, write_req: bytes, expected: ParameterGroup
) -> None:
    info = decode_frame(read_reply).info
    decoded = group.decode(info)
    assert decoded == expected
    decoded.validate()
    # The simulator's read reply is the captured one.
    assert decoded.encode_reply() == info


@pytest.mark.parametrize(("group", "read_req", "read_reply", "write_req", "expected"), A4, ids=_IDS)
def test_a4_write_request_byte_for_byte(
    group: type[ParameterGroup], read_req: bytes, read_reply: bytes, write_req: bytes, expected: ParameterGroup
) -> None:
    written = expected
    if group is PackOverVoltage:
        # The captured write carries 57.61 V (E10A), not the 57.6 V that was read.
        written = PackOverVoltage(alarm_v=57.61, protect_v=59.2, release_v=54.0, delay_s=1.0)
    written.validate()
    assert DRIVER.request(0x00, group.write_cid2, written.encode()) == write_req
    assert group.decode(decode_frame(write_req).info) == written
    assert GROUP_BY_WRITE_CID2[decode_frame(write_req).cid2] is group
    assert GROUP_BY_READ_CID2[group.read_cid2] is group


def test_a4_discharge_oc1_read_is_negative_write_positive() -> None:
    read = decode_frame(b"~25004600400C01FF97FF920AFAD3\r").info
    assert read[1:3] == (-105).to_bytes(2, "big", signed=True)
    group = DischargeOverCurrent1.decode(read)
    assert (group.alarm_a, group.protect_a) == (105, 110)
    assert group.encode()[1:3] == (105).to_bytes(2, "big")


def test_a4_protocol_names() -> None:
    group = ProtocolSelection.decode(decode_frame(b"~25004600A006131400FC6F\r").info)
    assert (group.can_protocol_name, group.rs485_protocol_name, group.selection_type_name) == (
        "Afore",
        "RONGKE",
        "Auto",
    )


def test_unknown_protocol_codes_stay_integers() -> None:
    assert 0x7E not in CAN_PROTOCOLS
    assert 0x7E not in RS485_PROTOCOLS
    assert 0x7E not in PROTOCOL_TYPES
    group = ProtocolSelection.decode(bytes((0x7E, 0x7E, 0x7E)))
    assert (group.can_protocol, group.rs485_protocol, group.selection_type) == (0x7E, 0x7E, 0x7E)
    assert group.can_protocol_name is None
    group.validate()
    assert group.encode() == bytes((0x7E, 0x7E, 0x7E))


def test_every_group_has_distinct_cid2_pairs_and_specs() -> None:
    assert len(GROUP_BY_READ_CID2) == len(GROUP_BY_WRITE_CID2) == len(PARAMETER_GROUPS) == 17
    for group in PARAMETER_GROUPS:
        fields = {f.name for f in dataclasses.fields(group)}  # type: ignore[arg-type]
        assert set(group.specs) <= fields
        for spec in group.specs.values():
            assert spec.minimum < spec.maximum
            assert spec.step > 0


@pytest.mark.parametrize(
    ("group", "reason", "field"),
    [
        (CellOverVoltage(alarm_v=3.6, protect_v=4.6, release_v=3.38, delay_s=1), "above_maximum", "protect_v"),
        (CellOverVoltage(alarm_v=3.6, protect_v=3.7, release_v=3.38, delay_s=0.5), "below_minimum", "delay_s"),
        (CellOverVoltage(alarm_v=3.605, protect_v=3.7, release_v=3.38, delay_s=1), "off_step", "alarm_v"),
        (CellOverVoltage(alarm_v=3.6, protect_v=3.7, release_v=3.38, delay_s=1.2), "off_step", "delay_s"),
        (CellOverVoltage(alarm_v=3.6, protect_v=3.6, release_v=3.38, delay_s=1), "order", "protect_v"),
        (CellOverVoltage(alarm_v=3.6, protect_v=3.7, release_v=3.65, delay_s=1), "order", "release_v"),
        (PackOverVoltage(alarm_v=57.6, protect_v=57.0, release_v=54.0, delay_s=1), "order", "protect_v"),
        (CellUnderVoltage(alarm_v=2.8, protect_v=2.9, release_v=3.0, delay_s=1), "order", "protect_v"),
        (CellUnderVoltage(alarm_v=2.8, protect_v=2.5, release_v=2.7, delay_s=1), "order", "release_v"),
        (PackUnderVoltage(alarm_v=44.8, protect_v=14.0, release_v=46.4, delay_s=1), "below_minimum", "protect_v"),
        (ChargeOverCurrent(alarm_a=110, protect_a=104, delay_s=1), "order", "protect_a"),
        (ChargeOverCurrent(alarm_a=104, protect_a=221, delay_s=1), "above_maximum", "protect_a"),
        (DischargeOverCurrent1(alarm_a=110, protect_a=110, delay_s=1), "order", "protect_a"),
        (DischargeOverCurrent2(protect_a=152, delay_s=0.1), "off_step", "protect_a"),
        (DischargeOverCurrent2(protect_a=150, delay_s=0.05), "below_minimum", "delay_s"),
        (ShortCircuit(delay_us=310), "off_step", "delay_us"),
        (ShortCircuit(delay_us=525), "above_maximum", "delay_us"),
        (Balancing(start_v=3.2, delta_mv=30), "below_minimum", "start_v"),
        (Sleep(cell_v=3.1, delay_min=0), "below_minimum", "delay_min"),
        (
            FullChargeLowSoc(full_charge_v=56.0, full_charge_current_a=6.0, low_soc_pct=5),
            "above_maximum",
            "full_charge_current_a",
        ),
        (
            ChargeDischargeOverTemperature(
                charge_alarm_c=51,
                charge_protect_c=50,
                charge_release_c=50,
                discharge_alarm_c=56,
                discharge_protect_c=60,
                discharge_release_c=55,
            ),
            "order",
            "charge_protect_c",
        ),
        (
            ChargeDischargeOverTemperature(
                charge_alarm_c=51,
                charge_protect_c=55,
                charge_release_c=50,
                discharge_alarm_c=56,
                discharge_protect_c=60,
                discharge_release_c=57,
            ),
            "order",
            "discharge_release_c",
        ),
        (
            ChargeDischargeUnderTemperature(
                charge_alarm_c=0,
                charge_protect_c=1,
                charge_release_c=2,
                discharge_alarm_c=-15,
                discharge_protect_c=-20,
                discharge_release_c=-15,
            ),
            "order",
            "charge_protect_c",
        ),
        (
            ChargeDischargeUnderTemperature(
                charge_alarm_c=0,
                charge_protect_c=-5,
                charge_release_c=0,
                discharge_alarm_c=-15,
                discharge_protect_c=-20,
                discharge_release_c=-16,
            ),
            "order",
            "discharge_release_c",
        ),
        (MosfetOverTemperature(alarm_c=90, protect_c=110, release_c=85.05), "off_step", "release_c"),
        (MosfetOverTemperature(alarm_c=90, protect_c=121, release_c=85), "above_maximum", "protect_c"),
        (
            EnvironmentTemperature(
                under_alarm_c=-20,
                under_protect_c=-25,
                under_release_c=-20,
                over_alarm_c=71,
                over_protect_c=70,
                over_release_c=65,
            ),
            "order",
            "over_protect_c",
        ),
        (LimiterStartCurrent(current_a=4), "below_minimum", "current_a"),
        (ProtocolSelection(can_protocol=0x100, rs485_protocol=0, selection_type=0), "above_maximum", "can_protocol"),
    ],
)
def test_validate_rejects(group: ParameterGroup, reason: str, field: str) -> None:
    with pytest.raises(ParameterError) as caught:
        group.validate()
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert isinstance(caught.value, BmsError)


@pytest.mark.parametrize(
    ("group", "field", "value", "other", "other_value", "relation"),
    [
        # The example: over-voltage protection set below the alarm.
        (CellOverVoltage(alarm_v=4.4, protect_v=3.7, release_v=3.4, delay_s=1), "protect_v", 3.7, "alarm_v", 4.4,
         Relation.ABOVE),
        (CellOverVoltage(alarm_v=3.6, protect_v=3.7, release_v=3.65, delay_s=1), "release_v", 3.65, "alarm_v", 3.6,
         Relation.AT_MOST),
        (CellUnderVoltage(alarm_v=2.8, protect_v=2.8, release_v=3.0, delay_s=1), "protect_v", 2.8, "alarm_v", 2.8,
         Relation.BELOW),
        (CellUnderVoltage(alarm_v=2.8, protect_v=2.5, release_v=2.7, delay_s=1), "release_v", 2.7, "alarm_v", 2.8,
         Relation.AT_LEAST),
    ],
)  # fmt: skip
def test_order_error_carries_both_fields(
    group: ParameterGroup, field: str, value: float, other: str, other_value: float, relation: Relation
) -> None:
    """An order error names the field, the one it conflicts with, both values, the unit and the relation wanted:
    what the integration needs to say "the protection voltage must be above the alarm voltage"."""
    with pytest.raises(ParameterError) as caught:
        group.validate()
    error = caught.value
    assert error.reason is ParameterRule.ORDER
    assert (error.field, error.value, error.other, error.other_value) == (field, value, other, other_value)
    assert (error.relation, error.unit, error.group) == (relation, "V", type(group))


def test_range_and_step_errors_carry_the_limits() -> None:
    """The documented cell OV range is 2.5-4.5 V in 0.01 V steps (protocol.md §1.9.12)."""
    with pytest.raises(ParameterError) as high:
        CellOverVoltage(alarm_v=3.6, protect_v=4.6, release_v=3.4, delay_s=1).validate()
    assert high.value.reason is ParameterRule.ABOVE_MAXIMUM
    assert (high.value.value, high.value.maximum, high.value.minimum, high.value.unit) == (4.6, 4.5, 2.5, "V")
    with pytest.raises(ParameterError) as off:
        CellOverVoltage(alarm_v=3.555, protect_v=3.7, release_v=3.4, delay_s=1).validate()
    assert off.value.reason is ParameterRule.OFF_STEP
    assert (off.value.field, off.value.step) == ("alarm_v", 0.01)


def test_release_may_equal_alarm_as_captured() -> None:
    """Env OT 65/70/65 °C and chg UT 0/-5/0 °C were read from a real pack: release == alarm is accepted."""
    MosfetOverTemperature(alarm_c=85, protect_c=110, release_c=85).validate()
    CellUnderVoltage(alarm_v=2.8, protect_v=2.5, release_v=2.8, delay_s=1).validate()


def test_encode_rejects_values_the_wire_cannot_hold() -> None:
    with pytest.raises(ParameterError) as caught:
        PackOverVoltage(alarm_v=70.0, protect_v=71.0, release_v=54.0, delay_s=1).encode()
    assert (caught.value.reason, caught.value.field) == ("wire_range", "alarm_v")
    with pytest.raises(ParameterError):
        LimiterStartCurrent(current_a=300).encode()
    with pytest.raises(ParameterError):
        ShortCircuit(delay_us=310).encode()


@pytest.mark.parametrize(("group", "read_req", "read_reply", "write_req", "expected"), A4, ids=_IDS)
def test_decode_rejects_wrong_length(
    group: type[ParameterGroup], read_req: bytes, read_reply: bytes, write_req: bytes, expected: ParameterGroup
) -> None:
    info = decode_frame(read_reply).info
    with pytest.raises(FrameError):
        group.decode(info + b"\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(FrameError):
        group.decode(info[:-1] if len(info) != 6 or group is not DischargeOverCurrent2 else info[:2])


def _validation_error(group: ParameterGroup) -> ParameterError | None:
    try:
        group.validate()
    except ParameterError as err:
        return err
    return None


_READ_LENGTHS = {row[0]: len(decode_frame(row[2]).info) for row in A4}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PARAMETER_GROUPS), st.data())
def test_round_trip_every_group(group: type[ParameterGroup], data: st.DataObject) -> None:
    """Any read reply of the right size: decode(encode(x)) == x and decode(encode_reply(x)) == x."""
    info = data.draw(st.binary(min_size=_READ_LENGTHS[group], max_size=_READ_LENGTHS[group]))
    if group is DischargeOverCurrent1:
        assume(b"\x80\x00" not in (info[1:3], info[3:5]))  # -32768 A has no positive counterpart
    value = group.decode(info)
    assert group.decode(value.encode()) == value
    assert group.decode(value.encode_reply()) == value
    error = _validation_error(value)
    if error is not None:
        assert error.reason in {"below_minimum", "above_maximum", "off_step", "order"}
        assert error.field in group.specs


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PARAMETER_GROUPS), st.binary(max_size=20))
def test_random_info_raises_only_frame_error(group: type[ParameterGroup], info: bytes) -> None:
    with contextlib.suppress(FrameError):
        group.decode(info)


class FakeExchange(Exchange):
    """A link that records requests and answers with one frame."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sent: list[bytes] = []

    async def exchange(self, request: bytes, *, timeout: float | None = None) -> Frame:
        self.sent.append(request)
        return decode_frame(self.reply)


async def test_read_group_over_an_exchange() -> None:
    link = FakeExchange(b"~25004600C0040064FCCE\r")
    group = await read_group(link, DRIVER, 0x00, LimiterStartCurrent)
    assert group == LimiterStartCurrent(current_a=100)
    assert link.sent == [b"~250046ED0000FD86\r"]
