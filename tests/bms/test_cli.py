"""The command-line tool: `decode` on every reply frame of the captures, `read`/`watch`/`scan` against the simulator.

Expected values are the ones tests/data/captures.md states for each frame (its "Decoded" column or the source's decode);
where the bytes and the stated decode disagree, the test says so.
"""

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from custom_components.lfp_bms.bms import cli, detect
from custom_components.lfp_bms.bms.__main__ import build_parser, main, run
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig


def decode_json(capsys: pytest.CaptureFixture[str], command: str, frame: str) -> Any:
    assert main(["decode", "--command", command, "--json", frame]) == 0
    return json.loads(capsys.readouterr().out)


def only_pack(data: Any) -> dict[str, Any]:
    packs = data["packs"]
    assert len(packs) == 1
    pack: dict[str, Any] = packs[0]
    return pack


# --- A.1 monitoring ------------------------------------------------------------------------------------------------

A1_ANALOG = (
    "~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60CC60CC70CC60CC7060B9B0B990B990B990BB30BBC"
    "FF1FCCCD12D303286A008C2710E1E4\\r"
)


def test_decode_a1_analog(capsys: pytest.CaptureFixture[str]) -> None:
    """A.1 #2: addr 01, 16 cells 3269–3272 mV, temps 24.1/23.9/23.9/23.9/26.5/27.4 °C, −2.25 A, 52.429 V,
    remain 48.19 Ah, full 103.46 Ah, 140 cycles, design 100.00 Ah."""
    pack = only_pack(decode_json(capsys, "42", A1_ANALOG))
    assert pack["address"] == 1
    cells = pack["cell_voltages_mv"]
    assert len(cells) == 16
    assert (min(cells), max(cells)) == (3269, 3272)
    assert pack["temperatures_c"] == [24.1, 23.9, 23.9, 23.9, 26.5, 27.4]
    assert pack["current_a"] == -2.25
    assert pack["voltage_v"] == 52.429
    assert pack["remaining_ah"] == 48.19
    assert pack["full_ah"] == 103.46
    assert pack["cycles"] == 140
    assert pack["design_ah"] == 100.0
    # Not sent by the standard record: derived remaining/full and full/design (capped at 100 %).
    assert pack["soc_pct"] == round(48.19 / 103.46 * 100, 1)
    assert pack["soh_pct"] == 100.0


def test_decode_a1_analog_human_and_real_cr(capsys: pytest.CaptureFixture[str]) -> None:
    """The frame may end in a real CR too; the text output is a table with the same values."""
    assert main(["decode", "--command", "0x42", A1_ANALOG.replace("\\r", "\r")]) == 0
    text = capsys.readouterr().out
    assert "52.429" in text
    assert "3269-3272" in text
    assert "140" in text


def test_decode_a1_status(capsys: pytest.CaptureFixture[str]) -> None:
    """A.1 #4: no alarms; protect 00/00; CFET on, DFET on; fault 00; balance 0000; warn 00/00."""
    frame = "~25014600004C000110000000000000000000000000000000000600000000000000000000000E000000000000EF3A\\r"
    pack = only_pack(decode_json(capsys, "44", frame))
    assert pack == {
        "address": 1,
        "protections": [],
        "warnings": [],
        "faults": [],
        "charge_mos_on": True,
        "discharge_mos_on": True,
        "balancing_cells": [],
    }


def test_decode_a1_model(capsys: pytest.CaptureFixture[str]) -> None:
    """A.1 #6: "P16S100A-1812-1.00 " + 0x00."""
    data = decode_json(capsys, "C1", "~25014600602850313653313030412D313831322D312E30302000F58E\\r")
    assert data == {"model": "P16S100A-1812-1.00"}


def test_decode_a1_serials(capsys: pytest.CaptureFixture[str]) -> None:
    """A.1 #8: the source reads "P1812101380309D" + spaces; the capture wins: the 'P' is 0x50, the last byte of the
    LENGTH field B050 (LENID 0x50 = 40 INFO bytes), and the INFO itself is "1812101380309D" + 26 spaces."""
    frame = "~25014600B05031383132313031333830333039442020202020202020202020202020202020202020202020202020EE0F\\r"
    data = decode_json(capsys, "C2", frame)
    assert data == {"bms_serial": "1812101380309D", "pack_serial": None}


def test_decode_a1_capacities(capsys: pytest.CaptureFixture[str]) -> None:
    """A.1 #10: remaining 62040 mAh, actual 103460 mAh, design 100000 mAh."""
    data = decode_json(capsys, "A6", "~25004600400C183C286A2710FB0E\\r")
    assert data == {"remaining_ah": 62.04, "full_ah": 103.46, "design_ah": 100.0}


def test_decode_a1_pack_count(capsys: pytest.CaptureFixture[str]) -> None:
    """A.1 #12: 2 packs."""
    assert decode_json(capsys, "90", "~25014600E00202FD35\\r") == {"packs": 2}


# --- A.2 switch / MOSFET / shutdown --------------------------------------------------------------------------------

#: (request code, reply, resulting control byte); tests/data/captures.md A.2: "bit0 buzzer, bit3 low gear, bit4
#: limiter, bit5 LED".
SWITCH_REPLIES = [
    (0x0D, "~25004600C0040D01FCC3\\r", 0x01),
    (0x0C, "~25004600C0040C00FCC5\\r", 0x00),
    (0x06, "~25004600C0040602FCD0\\r", 0x02),
    (0x07, "~25004600C0040722FCCD\\r", 0x22),
    (0x0A, "~25004600C0040A22FCC3\\r", 0x22),
    (0x0B, "~25004600C0040B32FCC1\\r", 0x32),
    (0x09, "~25004600C0040938FCC4\\r", 0x38),
    (0x08, "~25004600C0040830FCCD\\r", 0x30),
]


@pytest.mark.parametrize(("code", "frame", "control"), SWITCH_REPLIES)
def test_decode_a2_switch(capsys: pytest.CaptureFixture[str], code: int, frame: str, control: int) -> None:
    data = decode_json(capsys, "99", frame)
    assert data["command"] == code
    assert data["control"] == control
    assert data["buzzer_enabled"] == bool(control & 0x01)
    assert data["limiter_low_gear"] == bool(control & 0x08)
    assert data["limiter_enabled"] == bool(control & 0x10)
    assert data["led_alarm_enabled"] == bool(control & 0x20)


@pytest.mark.parametrize(
    ("command", "frame", "system", "charge_on", "discharge_on"),
    [
        # Table C (docs/protocol.md §1.9.3): bit1 charge MOSFET, bit2 discharge MOSFET.
        ("9A", "~25004600E00226FD30\\r", 0x26, True, True),  # charge MOSFET on
        ("9A", "~25004600E00224FD32\\r", 0x24, False, True),  # charge MOSFET off
        ("9B", "~25004600E00204FD34\\r", 0x04, False, True),  # discharge MOSFET on
    ],
)
def test_decode_a2_mosfet(
    capsys: pytest.CaptureFixture[str], command: str, frame: str, system: int, charge_on: bool, discharge_on: bool
) -> None:
    data = decode_json(capsys, command, frame)
    assert data == {"system": system, "charge_mos_on": charge_on, "discharge_mos_on": discharge_on}


def test_decode_a2_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Discharge MOSFET off: RTN 09 = refused. A refusal is not a bad frame: exit 1, said on stderr."""
    assert main(["decode", "--command", "9B", "--json", "~25004609E00204FD2B\\r"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "refused" in captured.err
    assert "0x09" in captured.err


@pytest.mark.parametrize("command", ["9C", "B2", "D0", "D4", "DA", "E2", "B5", "EC"])
def test_decode_acknowledgements(capsys: pytest.CaptureFixture[str], command: str) -> None:
    """Shutdown, clock write and parameter writes are answered `~250046000000FDAF\\r` (RTN 00, no INFO)."""
    assert decode_json(capsys, command, "~250046000000FDAF\\r") == {"ok": True}


# --- A.3 clock and history -----------------------------------------------------------------------------------------


def test_decode_a3_clock(capsys: pytest.CaptureFixture[str]) -> None:
    """2024-08-21 05:29:31 (source)."""
    assert decode_json(capsys, "B1", "~25004600400C180815051D1FFB10\\r") == {"time": "2024-08-21T05:29:31"}


def test_decode_a3_history(capsys: pytest.CaptureFixture[str]) -> None:
    """Source: 2024-2-29 2:00:56, −1.460 A, 55.767 V, 103.460 Ah, 103.460 Ah, max 3482 mV, min 3456 mV, 16 cells
    3479…3480 mV, temps 20.2/20.3/20.5/20.4/19.9/20.7 °C; trailing 00 00 00 00 00 06 00 43 FF FF FF FF undecoded."""
    frame = (
        "~25004600709018021D020038100D970D990D9A0D990D990D970D990D980D990D980D800D980D980D990D980D98060B740B750B770B76"
        "0B710B79FF6ED9D7286A286A0000000000060043FFFFFFFFDDE3\\r"
    )
    data = decode_json(capsys, "A1", frame)
    assert data["timestamp"] == "2024-02-29T02:00:56"
    assert data["current_a"] == -1.46
    assert data["voltage_v"] == 55.767
    assert data["remaining_ah"] == 103.46
    assert data["full_ah"] == 103.46
    cells = data["cell_voltages_mv"]
    assert len(cells) == 16
    assert (cells[0], cells[-1]) == (3479, 3480)
    assert (max(cells), min(cells)) == (3482, 3456)
    assert data["temperatures_c"] == [20.2, 20.3, 20.5, 20.4, 19.9, 20.7]
    assert data["trailer"] == "0000000000060043FFFFFFFF"


def test_decode_a3_end_of_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert decode_json(capsys, "A1", "~250046000000FDAF\\r") == {"end_of_history": True}


# --- A.4 parameter groups (read replies) ---------------------------------------------------------------------------

PARAMETER_READS = [
    (
        "D1",
        "~25004600F010010E100E740D340AFA35\\r",
        {"alarm_v": 3.6, "protect_v": 3.7, "release_v": 3.38, "delay_s": 1.0},
    ),
    (
        "D5",
        "~25004600F01001E100E740D2F00AFA24\\r",
        {"alarm_v": 57.6, "protect_v": 59.2, "release_v": 54.0, "delay_s": 1.0},
    ),
    (
        "D3",
        "~25004600F010010AF009C40B540AFA24\\r",
        {"alarm_v": 2.8, "protect_v": 2.5, "release_v": 2.9, "delay_s": 1.0},
    ),
    (
        "D7",
        "~25004600F01001AF009C40B5400AFA24\\r",
        {"alarm_v": 44.8, "protect_v": 40.0, "release_v": 46.4, "delay_s": 1.0},
    ),
    ("D9", "~25004600400C010068006E0AFB1D\\r", {"alarm_a": 104, "protect_a": 110, "delay_s": 1.0}),
    ("E3", "~25004600400C009604009604FB32\\r", {"protect_a": 150, "delay_s": 0.1}),
    ("E5", "~25004600E0020CFD25\\r", {"delay_us": 300}),
    ("B6", "~2500460080080D48001EFBE9\\r", {"start_v": 3.4, "delta_mv": 30}),
    ("A0", "~2500460080080C1C0005FBF3\\r", {"cell_v": 3.1, "delay_min": 5}),
    ("AF", "~25004600600ADAC007D005FB60\\r", {"full_charge_v": 56.0, "full_charge_current_a": 2.0, "low_soc_pct": 5}),
    (
        "DD",
        "~25004600501A010CA80CD00C9E0CDA0D020CD0F7BE\\r",
        {
            "charge_alarm_c": 51.0,
            "charge_protect_c": 55.0,
            "charge_release_c": 50.0,
            "discharge_alarm_c": 56.0,
            "discharge_protect_c": 60.0,
            "discharge_release_c": 55.0,
        },
    ),
    (
        "DF",
        "~25004600501A010AAA0A780AAA0A1409E20A14F7E5\\r",
        {
            "charge_alarm_c": 0.0,
            "charge_protect_c": -5.0,
            "charge_release_c": 0.0,
            "discharge_alarm_c": -15.0,
            "discharge_protect_c": -20.0,
            "discharge_release_c": -15.0,
        },
    ),
    ("E1", "~25004600200E010E2E0EF60DFCFA5D\\r", {"alarm_c": 90.0, "protect_c": 110.0, "release_c": 85.0}),
    (
        "E7",
        "~25004600501A0109E209B009E20D340D660D34F806\\r",
        {
            "under_alarm_c": -20.0,
            "under_protect_c": -25.0,
            "under_release_c": -20.0,
            "over_alarm_c": 65.0,
            "over_protect_c": 70.0,
            "over_release_c": 65.0,
        },
    ),
    ("ED", "~25004600C0040064FCCE\\r", {"current_a": 100}),
    (
        "EB",
        "~25004600A006131400FC6F\\r",
        {
            "can_protocol": 0x13,
            "can_protocol_name": "Afore",
            "rs485_protocol": 0x14,
            "rs485_protocol_name": "RONGKE",
            "selection_type": 0x00,
            "selection_type_name": "Auto",
        },
    ),
]


@pytest.mark.parametrize(("command", "frame", "expected"), PARAMETER_READS)
def test_decode_a4_parameter_reads(
    capsys: pytest.CaptureFixture[str], command: str, frame: str, expected: dict[str, Any]
) -> None:
    data = decode_json(capsys, command, frame)
    assert {key: data[key] for key in expected} == expected


def test_decode_a4_discharge_overcurrent(capsys: pytest.CaptureFixture[str]) -> None:
    """Source: read −105 / −110 A (the wire carries FF97/FF92), written as 105 / 110 A; 1000 ms. The library keeps
    one convention for read and write (positive magnitudes), so the read shows 105 / 110."""
    data = decode_json(capsys, "DB", "~25004600400C01FF97FF920AFAD3\\r")
    assert (data["alarm_a"], data["protect_a"]) == (105, 110)
    assert data["delay_s"] == 1.0


# --- B: PACE vendor documents --------------------------------------------------------------------------------------


def test_decode_b1_broadcast_reply(capsys: pytest.CaptureFixture[str]) -> None:
    """Pack count 01, 16 cells (3394, 3348, 3347 … 3344, 3347 mV), temps 26.9/26.9/27.0/26.8/26.5/27.5 °C, 0 A,
    53.589 V, remain 47.50 Ah, full 50.00 Ah, 0 cycles, design 50.00 Ah."""
    frame = (
        "~25004600F07A0001100D420D140D130D130D130D130D130D130D110D120D130D110D110D120D100D13060BB70BB70BB80BB60BB3"
        "0BBD0000D155128E03138800001388E3AC\\r"
    )
    pack = only_pack(decode_json(capsys, "42", frame))
    cells = pack["cell_voltages_mv"]
    assert len(cells) == 16
    assert cells[:3] == [3394, 3348, 3347]
    assert cells[-2:] == [3344, 3347]
    assert pack["temperatures_c"] == [26.9, 26.9, 27.0, 26.8, 26.5, 27.5]
    assert pack["current_a"] == 0
    assert pack["voltage_v"] == 53.589
    assert pack["remaining_ah"] == 47.5
    assert pack["full_ah"] == 50.0
    assert pack["cycles"] == 0
    assert pack["design_ah"] == 50.0


def test_decode_b2_rs485_reply(capsys: pytest.CaptureFixture[str]) -> None:
    """COMMAND 02, 16 cells 3383 … 3334 mV, temps 25.6/25.8/25.2/25.3/25.5/26.4 °C, 0 A, 53.140 V, remain 17.50 Ah,
    full 50.00 Ah, 0 cycles, design 50.00 Ah."""
    frame = (
        "~25024600F07A0002100D370CE50D080CED0D060CE70D1D0CEB0CF80CFA0CFB0D070CE10CF10CC20D06060BAA0BAC0BA60BA70BA9"
        "0BB20000CF9406D603138800001388E261\\r"
    )
    pack = only_pack(decode_json(capsys, "42", frame))
    assert pack["address"] == 2
    cells = pack["cell_voltages_mv"]
    assert len(cells) == 16
    assert (cells[0], cells[-1]) == (3383, 3334)
    assert pack["temperatures_c"] == [25.6, 25.8, 25.2, 25.3, 25.5, 26.4]
    assert pack["current_a"] == 0
    assert pack["voltage_v"] == 53.14
    assert pack["remaining_ah"] == 17.5
    assert pack["full_ah"] == 50.0
    assert pack["cycles"] == 0
    assert pack["design_ah"] == 50.0


# --- F: EG4 --------------------------------------------------------------------------------------------------------


def test_decode_f1_eg4_analog(capsys: pytest.CaptureFixture[str]) -> None:
    """16 cells 3156–3202 mV, 4 cell temps 29.0 °C, env 30.0, MOS 30.0, 0 A, 51.17 V, 0 Ah remaining, 100.00 Ah
    full, 0 cycles, SOC 0 %, SOH 100 %."""
    frame = (
        "~20014A00A0CA0101100C540C810C810C820C810C810C810C810C820C820C820C820C820C820C820C7E040BCD0BCD0BCD0BCD0BD70BD7"
        "000013FD0000271000000F000000640C820C54002E0BCD0BCD000000150000003C0000000A0000001D00000000000000000002001DD300\\r"
    )
    pack = only_pack(decode_json(capsys, "42", frame))
    cells = pack["cell_voltages_mv"]
    assert len(cells) == 16
    assert (min(cells), max(cells)) == (3156, 3202)
    assert pack["temperatures_c"] == [29.0, 29.0, 29.0, 29.0, 30.0, 30.0]
    assert pack["current_a"] == 0
    assert pack["voltage_v"] == 51.17
    assert pack["remaining_ah"] == 0
    assert pack["full_ah"] == 100.0
    assert pack["cycles"] == 0
    assert pack["soc_pct"] == 0
    assert pack["soh_pct"] == 100


def test_decode_f1_eg4_status(capsys: pytest.CaptureFixture[str]) -> None:
    """Remaining-capacity byte 01 = SOC low; FET status 03 = both MOSFETs on."""
    frame = "~20014A007054010110000000000000000000000000000000000400000000000000000900000000000103000000000000EDC4\\r"
    pack = only_pack(decode_json(capsys, "44", frame))
    assert pack["warnings"] + pack["protections"] == ["USOC"]
    assert pack["faults"] == []
    assert pack["charge_mos_on"] is True
    assert pack["discharge_mos_on"] is True


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "~25014644E00201FD2F\\r",  # A.1 #3 with the checksum's last digit changed
        "25014644E00201FD2E",  # no SOI
        "~2501",  # too short
        "~25014600F07A0001100CC7\\r",  # LENID promises more than there is
        "~25014644E00201FD2E\\r~",  # something after the end
        "~25014644E00201FD2É\\r",  # not ASCII
    ],
)
def test_decode_bad_frame_exits_2(capsys: pytest.CaptureFixture[str], frame: str) -> None:
    assert main(["decode", "--command", "42", frame]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("decode: bad frame:")


def test_decode_request_frame_is_a_bad_reply(capsys: pytest.CaptureFixture[str]) -> None:
    """A.1 #1 is a request: CID2 42 in the RTN position is no return code, so it is not a reply at all."""
    assert main(["decode", "--command", "42", "~25014642E00201FD30\\r"]) == 2
    assert "not a reply" in capsys.readouterr().err


def test_decode_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--command", "7F", "~250046000000FDAF\\r"]) == 2
    assert "no decoder" in capsys.readouterr().err


def test_decode_command_must_be_hex() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["decode", "--command", "xyz", "~250046000000FDAF\\r"])
    assert exit_info.value.code == 2


# --- read / watch / scan against the simulator ----------------------------------------------------------------------


@pytest.fixture
async def sim16() -> AsyncGenerator[Simulator]:
    sim = Simulator(SimulatorConfig(packs=16, speed=0, paced=False, seed=3))
    await sim.start()
    yield sim
    await sim.stop()


async def test_read_prints_all_16_packs(sim16: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(build_parser().parse_args(["read", sim16.url, "--baud", "9600"])) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {int(line.split()[0]): line for line in lines[1:] if line.split()[0].isdigit()}
    assert sorted(rows) == list(range(1, 17))
    for address, line in rows.items():
        truth = sim16.cluster.pack(address).analog(address)
        assert f"{truth.voltage_v:.3f}" in line
        assert "idle" in line
    assert lines[-1].startswith("cluster: 16/16 packs online")


async def test_read_json_matches_the_simulator(sim16: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(build_parser().parse_args(["read", sim16.url, "--json"])) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["link"]["strategy"] == "broadcast"
    assert [pack["address"] for pack in data["packs"]] == list(range(1, 17))
    for pack in data["packs"]:
        truth = sim16.cluster.pack(pack["address"]).analog(pack["address"])
        assert pack["cell_voltages_mv"] == list(truth.cell_voltages_mv)
        assert pack["voltage_v"] == pytest.approx(truth.voltage_v, abs=0.001)
        assert pack["online"] is True
        assert pack["error"] is None
        # The status fields are there as well.
        assert pack["protections"] == []
        assert isinstance(pack["charge_mos_on"], bool)
    assert data["summary"]["packs_online"] == 16


async def test_watch_prints_a_line_per_pack_per_read(sim16: Simulator) -> None:
    lines: list[str] = []
    status = await cli.watch(sim16.url, interval=0, count=2, bauds=[9600], out=lines.append, err=lines.append)
    assert status == 0
    text = "\n".join(lines).splitlines()
    assert len(text) == 32
    for address in range(1, 17):
        assert sum(f"pack {address:2d} " in line for line in text) == 2


async def test_scan_prints_the_stages(capsys: pytest.CaptureFixture[str]) -> None:
    async with Simulator(SimulatorConfig(packs=2, speed=0, paced=False)) as sim:
        assert await run(build_parser().parse_args(["scan", sim.url])) == 0
    lines = capsys.readouterr().out.splitlines()
    stages = [line for line in lines if line.startswith("... ")]
    assert stages == ["... baud 9600", "... protocol pace25", "... pack addresses", "... identity", "... first read"]
    found = dict(line.split(":", 1) for line in lines if not line.startswith("... "))
    assert found["baud"].strip() == "9600"
    assert found["protocol"].strip() == "pace25"
    assert found["VER"].strip() == "0x25"
    assert found["addresses"].strip() == "1 2"
    assert found["strategy"].strip() == "broadcast"
    assert found["model"].strip() == sim.cluster.pack(1).model


async def test_read_without_battery_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "PROBE_TIMEOUT", 0.05)
    errors: list[str] = []
    async with Simulator(SimulatorConfig(packs=1, speed=0, paced=False, faults="drop=1")) as sim:
        status = await cli.read(sim.url, as_json=False, bauds=[9600], out=errors.append, err=errors.append)
    assert status == 1
    assert errors[0].startswith("no battery found")
