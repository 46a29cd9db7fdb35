"""The command line beyond test_cli.py: argument errors, dispatch, interrupts, the 0x20-family `decode`, offline
packs in the text and JSON output, and failures after detection.

The 0x20-family replies are taken from the simulator (tests/data/captures.md has no Pylon/Seplos replies); the expected
values are the simulated pack's own state, not the decoder's.
"""

import argparse
import json
import runpy
import sys
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from custom_components.lfp_bms.bms import cli
from custom_components.lfp_bms.bms.__main__ import build_parser, main, run
from custom_components.lfp_bms.bms.cli import parse_frame_text
from custom_components.lfp_bms.bms.client import ClusterClient
from custom_components.lfp_bms.bms.driver import ProtocolName
from custom_components.lfp_bms.bms.frame import encode_frame
from custom_components.lfp_bms.bms.models import ClusterState, Condition, Fault, PackReading, PackStatus
from custom_components.lfp_bms.bms.registry import make_driver
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.simulator.responders import LinkMode
from custom_components.lfp_bms.bms.transport import LinkTimeout, SerialLink

# --- argument parsing and dispatch --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["decode", "--command", "100", "~200246000000FDB2\\r"],  # CID2 is one byte
        ["scan", "socket://127.0.0.1:1", "--baud", "9600,fast"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_baud_list_is_parsed_in_order() -> None:
    args = build_parser().parse_args(["scan", "/dev/ttyUSB0", "--baud", "115200,9600"])
    assert args.baud == [115200, 9600]


async def test_run_rejects_an_unknown_command() -> None:
    with pytest.raises(AssertionError, match="unhandled command"):
        await run(argparse.Namespace(command="frobnicate"))


async def test_run_dispatches_simulate(capsys: pytest.CaptureFixture[str]) -> None:
    # An invalid pack count ends `simulate` before it serves, so the dispatch is seen without a server.
    assert await run(build_parser().parse_args(["simulate", "--packs", "0"])) == 2
    assert "packs must be 1-16" in capsys.readouterr().err


async def test_run_dispatches_watch_with_count(capsys: pytest.CaptureFixture[str]) -> None:
    async with Simulator(SimulatorConfig(packs=2, speed=0, paced=False)) as sim:
        args = build_parser().parse_args(["watch", sim.url, "--baud", "9600", "--interval", "0", "--count", "1"])
        assert await run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in lines] == [["pack", "1"], ["pack", "2"]]


def _interrupting(exception: BaseException) -> Callable[..., Any]:
    async def command(*args: object, **kwargs: object) -> int:
        raise exception

    return command


@pytest.mark.parametrize(("command", "status"), [("watch", 0), ("scan", 130), ("read", 130)])
def test_ctrl_c_ends_watch_cleanly_and_others_with_130(
    monkeypatch: pytest.MonkeyPatch, command: str, status: int
) -> None:
    monkeypatch.setattr(cli, command, _interrupting(KeyboardInterrupt()))
    assert main([command, "socket://127.0.0.1:1"]) == status


def test_broken_pipe_exits_0_and_silences_stdout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "read", _interrupting(BrokenPipeError()))
    with (tmp_path / "stdout").open("w") as stdout:
        # A file of our own as standard output: main redirects the descriptor, not the test run's terminal.
        monkeypatch.setattr(sys, "stdout", stdout)
        assert main(["read", "socket://127.0.0.1:1"]) == 0
        # Standard output now goes nowhere, so the interpreter's final flush cannot fail again.
        stdout.write("lost\n")
    assert (tmp_path / "stdout").read_text() == ""


@pytest.mark.filterwarnings("ignore:.*found in sys.modules.*:RuntimeWarning")
def test_python_dash_m_runs_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["bms", "decode", "--command", "4F", "--json", "~200246000000FDB2\\r"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("custom_components.lfp_bms.bms", run_name="__main__")
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out) == {"major": 2, "minor": 0}


# --- decode: the 0x20 family and EG4 ------------------------------------------------------------------------------


@pytest.fixture(params=["pylon", "seplos", "eg4"])
async def family20_sim(request: pytest.FixtureRequest) -> AsyncGenerator[Simulator]:
    async with Simulator(
        SimulatorConfig(packs=1, speed=0, paced=False, protocol=ProtocolName(request.param), link=LinkMode.RS485)
    ) as sim:
        yield sim


async def reply_text(sim: Simulator, cid2: int, info: bytes = b"") -> str:
    driver = make_driver(sim.config.protocol)
    link = SerialLink(sim.url)
    try:
        frame = await link.exchange(encode_frame(driver.ver, sim.addresses[0], driver.cid1, cid2, info))
    finally:
        await link.close()
    return frame.raw.decode("ascii").rstrip("\r")


def decode_ok(cid2: int, text: str, *, as_json: bool) -> str:
    out: list[str] = []
    assert cli.decode(cid2, text, as_json=as_json, out=out.append, err=out.append) == 0, out
    return out[0]


def only(packs: Any) -> dict[str, Any]:
    assert len(packs) == 1
    pack: dict[str, Any] = packs[0]
    return pack


async def test_decode_family20_analog(family20_sim: Simulator) -> None:
    address = family20_sim.addresses[0]
    info = b"" if family20_sim.config.protocol == "eg4" else bytes([address])
    text = await reply_text(family20_sim, 0x42, info)
    truth = family20_sim.cluster.pack(address).analog(address)
    pack = only(json.loads(decode_ok(0x42, text, as_json=True))["packs"])
    assert pack["address"] == address
    assert pack["cell_voltages_mv"] == list(truth.cell_voltages_mv)
    assert pack["voltage_v"] == pytest.approx(truth.voltage_v, abs=0.01)
    if family20_sim.config.protocol == "eg4":
        # An EG4 layout under CID1 0x46 (a relabelled pack) is still recognised by its layout.
        frame = parse_frame_text(text)
        relabelled = encode_frame(0x20, address, 0x46, 0x00, frame.info).decode()
        assert only(json.loads(decode_ok(0x42, relabelled, as_json=True))["packs"])["cell_voltages_mv"] == list(
            truth.cell_voltages_mv
        )
    human = decode_ok(0x42, text, as_json=False)
    assert f"pack {address}: cells {' '.join(str(mv) for mv in truth.cell_voltages_mv)} mV" in human


async def test_decode_family20_status(family20_sim: Simulator) -> None:
    address = family20_sim.addresses[0]
    info = b"" if family20_sim.config.protocol == "eg4" else bytes([address])
    text = await reply_text(family20_sim, 0x44, info)
    pack = only(json.loads(decode_ok(0x44, text, as_json=True))["packs"])
    assert pack["address"] == address
    assert pack["protections"] == pack["warnings"] == pack["faults"] == []
    assert decode_ok(0x44, text, as_json=False).startswith(f"pack {address}: charge MOS on, discharge MOS on;")


async def test_decode_eg4_hardware_info() -> None:
    async with Simulator(
        SimulatorConfig(packs=1, speed=0, paced=False, protocol=ProtocolName.EG4, link=LinkMode.RS485)
    ) as sim:
        text = await reply_text(sim, 0x51)
        model = sim.cluster.pack(1).model
    # F.1: the EG4 0x51 reply is one free text that names the model.
    assert model in json.loads(decode_ok(0x51, text, as_json=True))["text"]


@pytest.fixture
async def pylon_sim() -> AsyncGenerator[Simulator]:
    async with Simulator(
        SimulatorConfig(packs=1, speed=0, paced=False, protocol=ProtocolName.PYLON, link=LinkMode.RS485)
    ) as sim:
        yield sim


async def test_decode_pylon_serial_number(pylon_sim: Simulator) -> None:
    data = json.loads(decode_ok(0x93, await reply_text(pylon_sim, 0x93, b"\x02"), as_json=True))
    assert data["address"] == 2
    # docs/protocol.md §1.8: the 0x93 reply carries 16 ASCII characters of the serial.
    assert data["serial"] == pylon_sim.cluster.pack(2).pack_serial[:16]


async def test_decode_pylon_protocol_version_and_parameters(pylon_sim: Simulator) -> None:
    assert decode_ok(0x4F, await reply_text(pylon_sim, 0x4F), as_json=False) == "major: 2\nminor: 0"
    manufacturer = json.loads(decode_ok(0x51, await reply_text(pylon_sim, 0x51), as_json=True))
    # The Pylon device name field is 10 characters.
    assert manufacturer["device_name"] == pylon_sim.cluster.pack(2).model[:10]
    system = json.loads(decode_ok(0x47, await reply_text(pylon_sim, 0x47), as_json=True))
    assert system["cell_low_voltage_v"] < system["cell_high_voltage_v"]
    management = json.loads(decode_ok(0x92, await reply_text(pylon_sim, 0x92, b"\x02"), as_json=True))
    assert management["discharge_voltage_limit_v"] < management["charge_voltage_limit_v"]


def test_decode_pylon_software_version() -> None:
    # docs/protocol.md §1.8 0x96: address, manufacturer version (2 bytes), mainline version (3 bytes).
    frame = encode_frame(0x20, 2, 0x46, 0x00, bytes([2, 1, 7, 3, 4, 5])).decode()
    assert json.loads(decode_ok(0x96, frame, as_json=True)) == {
        "address": 2,
        "manufacturer_version": [1, 7],
        "mainline_version": [3, 4, 5],
        "mainline": "3.4.5",
    }


def test_decode_eg4_clock_and_acknowledgement() -> None:
    # F.1's clock layout: year (2 bytes), month, day, hour, minute, second.
    clock = encode_frame(0x20, 1, 0x4A, 0x00, bytes([0x07, 0xE9, 6, 1, 12, 30, 5])).decode().rstrip("\r")
    assert decode_ok(0x4D, clock, as_json=False) == "time: 2025-06-01T12:30:05"
    ack = encode_frame(0x20, 1, 0x4A, 0x00).decode()
    assert json.loads(decode_ok(0x4E, ack, as_json=True)) == {"ok": True}


@pytest.mark.parametrize(
    ("frame", "command", "message"),
    [
        # A write acknowledgement must be empty.
        (encode_frame(0x20, 1, 0x4A, 0x00, b"\x01"), 0x4E, "should carry no INFO"),
        # Three bytes are no known 0x42 layout.
        (encode_frame(0x20, 2, 0x46, 0x00, b"\x00\x01\x02"), 0x42, "neither a Pylon, a Seplos nor an EG4"),
        (encode_frame(0x20, 1, 0x4A, 0x00), 0x99, "no decoder for EG4 command 0x99"),
        (encode_frame(0x20, 2, 0x46, 0x00), 0x99, "no decoder for 0x20-family command 0x99"),
    ],
)
def test_decode_bad_or_unknown_replies_exit_2(frame: bytes, command: int, message: str) -> None:
    errors: list[str] = []
    assert cli.decode(command, frame.decode(), as_json=False, out=errors.append, err=errors.append) == 2
    assert message in errors[0]


# --- plain data and text of partial results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WithProperties:
    value: int

    @property
    def doubled(self) -> int:
        return self.value * 2

    @property
    def _hidden(self) -> int:
        return -1


def test_plain_converts_enums_sets_mappings_and_public_properties() -> None:
    data = cli.plain(
        {1: frozenset(Fault), "w": _WithProperties(4), "raw": b"\x0a\xff", "c": Condition.CELL_OVERVOLTAGE}
    )
    assert data["1"] == sorted(fault.value for fault in Fault)
    assert data["w"] == {"value": 4, "doubled": 8}
    assert data["raw"] == "0AFF"
    assert data["c"] == Condition.CELL_OVERVOLTAGE.value


def test_format_plain_nests_dicts_and_shows_missing_values() -> None:
    text = cli.format_plain({"a": {"b": [1, 2], "c": None}, "d": [], "e": "x"})
    assert text.splitlines() == ["a:", "  b: 1 2", "  c: -", "d: -", "e: x"]
    assert cli.format_decoded(None) == "-"


def test_unknown_switch_states_show_as_dashes() -> None:
    assert cli.format_statuses([PackStatus(address=4)]) == (
        "pack 4: charge MOS -, discharge MOS -; alarms -; balancing -"
    )


OFFLINE = ClusterState(
    packs={1: PackReading(address=1, error="LinkTimeout"), 2: PackReading(address=2, error="missing")}
)


def test_offline_packs_in_the_table_and_summary() -> None:
    lines = cli.format_cluster(OFFLINE).splitlines()
    assert lines[1].split()[:4] == ["1", "offline", "(LinkTimeout)", "-"]
    assert lines[2].split()[:3] == ["2", "offline", "(missing)"]
    # Nothing online: no cell extremes in the summary.
    assert lines[-1].startswith("cluster: 0/2 packs online, SOC - %, - V")
    assert "cells" not in lines[-1]


async def test_pack_without_status_shows_no_alarms() -> None:
    async with Simulator(SimulatorConfig(packs=1, speed=0, paced=False)) as sim:
        analog = sim.cluster.pack(1).analog(1)
    state = ClusterState(packs={1: PackReading(address=1, analog=analog)})
    row = cli.format_cluster(state).splitlines()[1].split()
    assert row[:3] == ["1", "idle", f"{analog.voltage_v:.3f}"]
    assert row[-1] == "-"
    assert cli.format_watch(state, datetime(2026, 1, 1)).endswith("idle -")


def test_offline_packs_in_watch_lines_and_json() -> None:
    assert cli.format_watch(OFFLINE, datetime(2026, 1, 2, 3, 4, 5)).splitlines() == [
        "03:04:05 pack  1 offline (LinkTimeout)",
        "03:04:05 pack  2 offline (missing)",
    ]
    data = cli.cluster_dict(OFFLINE)
    assert "link" not in data
    assert data["packs"][0] == {"address": 1, "online": False, "state": "offline", "error": "LinkTimeout"}
    assert data["summary"]["packs_online"] == 0


# --- failures after (or instead of) detection ---------------------------------------------------------------------


async def test_link_that_cannot_open_is_a_detection_failure() -> None:
    async with Simulator(SimulatorConfig(packs=1, speed=0, paced=False)) as sim:
        url = sim.url
    errors: list[str] = []
    assert await cli.scan(url, bauds=[9600], out=errors.append, err=errors.append) == 1
    assert errors[-1].startswith("detection failed:")


class _FailingReads(ClusterClient):
    """A client whose first `failures` polls fail as a cluster that stopped answering would."""

    failures = 1

    async def read_all(self) -> ClusterState:
        if _FailingReads.failures > 0:
            _FailingReads.failures -= 1
            raise LinkTimeout("nothing answered")
        return await super().read_all()


async def test_read_that_fails_after_detection_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "ClusterClient", _FailingReads)
    monkeypatch.setattr(_FailingReads, "failures", 1)
    out: list[str] = []
    errors: list[str] = []
    async with Simulator(SimulatorConfig(packs=2, speed=0, paced=False)) as sim:
        assert await cli.read(sim.url, as_json=True, bauds=[9600], out=out.append, err=errors.append) == 1
    assert out == []
    assert errors == ["read failed: nothing answered"]


async def test_watch_reports_a_failed_read_and_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "ClusterClient", _FailingReads)
    monkeypatch.setattr(_FailingReads, "failures", 1)
    out: list[str] = []
    errors: list[str] = []
    when = datetime(2026, 1, 2, 3, 4, 5)
    async with Simulator(SimulatorConfig(packs=2, speed=0, paced=False)) as sim:
        status = await cli.watch(
            sim.url, interval=0, count=2, bauds=[9600], out=out.append, err=errors.append, clock=lambda: when
        )
    assert status == 0
    assert errors == ["03:04:05 read failed: nothing answered"]
    assert len(out) == 1
    assert [line.split()[1:3] for line in out[0].splitlines()] == [["pack", "1"], ["pack", "2"]]
