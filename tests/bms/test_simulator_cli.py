"""The `simulate` subcommand: option parsing and serving until the stop signal."""

import argparse
import asyncio
import os
import signal

import pytest

from custom_components.lfp_bms.bms.__main__ import build_parser
from custom_components.lfp_bms.bms.pace import PaceDriver
from custom_components.lfp_bms.bms.simulator import Simulator, SimulatorConfig
from custom_components.lfp_bms.bms.simulator import cli as simulator_cli
from custom_components.lfp_bms.bms.simulator.physics import SineDayProfile
from custom_components.lfp_bms.bms.transport import SerialLink


def simulate_args(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["simulate", *options])


def test_per_pack_lists_and_single_values() -> None:
    args = simulate_args("--packs", "3", "--cells", "16,15,8", "--temperatures", "4", "--tails", "0,1,14")
    config = simulator_cli.config_from_args(args)
    assert config.cells == [16, 15, 8]
    assert config.temperatures == 4
    assert config.tails == [0, 1, 14]


@pytest.mark.parametrize(
    ("text", "peak", "night", "start"),
    [("sine:", 50.0, 20.0, 0.0), ("sine:60", 60.0, 20.0, 0.0), ("sine:60,10,6", 60.0, 10.0, 6.0)],
)
def test_sine_profile_defaults_fill_missing_values(text: str, peak: float, night: float, start: float) -> None:
    profile = simulator_cli.parse_profile(text)
    assert profile == SineDayProfile(peak_charge_a=peak, night_discharge_a=night, start_hour=start)


@pytest.mark.parametrize("text", ["sine:a,b", "constant:x", "script:10", "wave:1"])
def test_bad_profile_is_an_argument_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        simulator_cli.parse_profile(text)


def test_bad_fault_spec_exits_2() -> None:
    with pytest.raises(SystemExit) as exit_info:
        simulate_args("--faults", "bogus=1")
    assert exit_info.value.code == 2


async def test_invalid_config_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert await simulator_cli.run(simulate_args("--packs", "17")) == 2
    assert capsys.readouterr().err.startswith("simulate: packs must be 1-16")


class _Started:
    """Stand-in for the Simulator class that tells the test when the server is up."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.instance: Simulator | None = None

    def __call__(self, config: SimulatorConfig) -> Simulator:
        outer = self

        class Watched(Simulator):
            async def start(self) -> None:
                await super().start()
                outer.instance = self
                outer.started.set()

        return Watched(config)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_run_serves_until_a_stop_signal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stop_signal: signal.Signals
) -> None:
    watcher = _Started()
    monkeypatch.setattr(simulator_cli, "Simulator", watcher)
    args = simulate_args("--packs", "2", "--no-pacing", "--speed", "0")
    task = asyncio.create_task(simulator_cli.run(args))
    await watcher.started.wait()
    sim = watcher.instance
    assert sim is not None
    link = SerialLink(sim.url)
    try:
        reply = await link.exchange(PaceDriver().analog_request(1, 1))
    finally:
        await link.close()
    assert reply.rtn == 0
    os.kill(os.getpid(), stop_signal)
    assert await task == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"serving 2 pace25 pack(s), rs232-master, on {sim.url}"
    assert lines[-1].startswith("requests 1, replies 1, bytes in/out ")


async def test_run_prints_the_pty_and_stops_when_cancelled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    watcher = _Started()
    monkeypatch.setattr(simulator_cli, "Simulator", watcher)
    task = asyncio.create_task(simulator_cli.run(simulate_args("--pty", "--no-pacing", "--protocol", "pylon")))
    await watcher.started.wait()
    assert watcher.instance is not None
    pty_path = watcher.instance.pty_path
    assert pty_path is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("serving 1 pylon pack(s), rs232-master, on socket://127.0.0.1:")
    assert lines[1] == f"pty: {pty_path}"
    # The simulator is stopped and its counters printed even when the task is cancelled.
    assert lines[-1] == "requests 0, replies 0, bytes in/out 0/0"
