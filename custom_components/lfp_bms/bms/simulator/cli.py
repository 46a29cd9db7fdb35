"""The `simulate` subcommand: serve a simulated cluster until interrupted.

    python -m custom_components.lfp_bms.bms simulate --packs 4 --protocol pace25 --link rs232-master --pty \
        --faults "drop=0.02,offline=3@60+30" --profile sine:60,20
"""

import argparse
import asyncio
import contextlib
import signal
import sys

from ..driver import ProtocolName
from .faults import FaultPlan, FaultSpecError
from .physics import ConstantProfile, Profile, ScriptedProfile, SineDayProfile
from .responders import LinkMode
from .server import Simulator, SimulatorConfig


def _int_list(text: str) -> int | list[int]:
    """`16` for every pack, or `16,16,8` one per pack."""
    parts = [int(part) for part in text.split(",")]
    return parts[0] if len(parts) == 1 else parts


def parse_profile(text: str) -> Profile:
    """`constant:A`, `sine:PEAK_CHARGE_A,NIGHT_DISCHARGE_A[,START_HOUR]`, or `script:SECONDS:A;SECONDS:A;...`."""
    kind, _, spec = text.partition(":")
    try:
        if kind == "constant":
            return ConstantProfile(float(spec or 0))
        if kind == "sine":
            values = [float(v) for v in spec.split(",")] if spec else []
            peak, night, start = [*values, *(50.0, 20.0, 0.0)[len(values) :]][:3]
            return SineDayProfile(peak_charge_a=peak, night_discharge_a=night, start_hour=start)
        if kind == "script":
            steps = []
            for step in spec.split(";"):
                duration, current = step.split(":")
                steps.append((float(duration), float(current)))
            return ScriptedProfile(tuple(steps))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"bad profile {text!r}: {err}") from None
    raise argparse.ArgumentTypeError(f"unknown profile {text!r} (constant:A, sine:PEAK,NIGHT, script:S:A;S:A)")


def _faults(text: str) -> str:
    try:
        FaultPlan.parse(text)
    except FaultSpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `simulate`."""
    parser.add_argument("--packs", type=int, default=1, help="number of packs, 1-16 (default 1)")
    parser.add_argument("--protocol", choices=[p.value for p in ProtocolName], default=ProtocolName.PACE25.value)
    parser.add_argument("--link", choices=[m.value for m in LinkMode], default=LinkMode.RS232_MASTER.value)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 = pick a free one (default)")
    parser.add_argument("--pty", action="store_true", help="also serve on a pty and print its path")
    parser.add_argument("--baud", type=int, default=9600, help="line rate for reply pacing, 0 = no pacing")
    parser.add_argument("--no-pacing", action="store_true", help="reply at once, whatever the baud")
    parser.add_argument("--turnaround-ms", type=float, default=40.0, help="BMS reply delay (default 40 ms)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the physics and the faults")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    parser.add_argument("--faults", type=_faults, default="", help="fault SPEC, see faults.py")
    parser.add_argument("--cells", type=_int_list, default=16, help="cells per pack: 8, 15 or 16 (or a list)")
    parser.add_argument("--temperatures", type=_int_list, default=6, help="sensors per pack: 4 or 6 (or a list)")
    parser.add_argument("--tails", type=_int_list, default=0, help="PACE 0x42 tail bytes: 0, 1, 8 or 14 (or a list)")
    parser.add_argument("--status-extra-byte", action="store_true", help="PACE 0x44: extra byte after each record")
    parser.add_argument("--profile", type=parse_profile, default=ConstantProfile(0.0), help="load profile")


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        packs=args.packs,
        protocol=ProtocolName(args.protocol),
        link=LinkMode(args.link),
        host=args.host,
        port=args.port,
        pty=args.pty,
        baud=args.baud,
        paced=not args.no_pacing,
        turnaround_ms=args.turnaround_ms,
        seed=args.seed,
        speed=args.speed,
        faults=args.faults,
        cells=args.cells,
        temperatures=args.temperatures,
        tails=args.tails,
        status_extra_byte=args.status_extra_byte,
        profile=args.profile,
    )


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print where. Returns the exit status."""
    try:
        config = config_from_args(args)
    except ValueError as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 2
    simulator = Simulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await simulator.start()
    try:
        # Modbus packs are slaves on an RS485 bus whatever --link says.
        link = "rs485 bus" if simulator.modbus is not None else config.link
        print(f"serving {config.packs} {config.protocol} pack(s), {link}, on {simulator.url}", flush=True)
        if simulator.pty_path:
            print(f"pty: {simulator.pty_path}", flush=True)
        await stop.wait()
    finally:
        await simulator.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        stats = simulator.stats
        print(f"requests {stats.requests}, replies {stats.replies}, bytes in/out {stats.bytes_in}/{stats.bytes_out}")
    return 0
