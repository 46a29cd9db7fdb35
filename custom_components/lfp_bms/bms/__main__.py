"""`python -m custom_components.lfp_bms.bms`: scan, read, watch, decode and simulate.

    scan URL                          detect what is on the link, stage by stage
    read URL [--json]                 detect, then read every pack once
    watch URL [--interval S]          detect, then read repeatedly (a line per pack per read) until Ctrl-C
    decode --command HEX [--json] FRAME
                                      decode one reply frame (as in tests/data/captures.md; trailing \\r optional)
    simulate [options]                serve a simulated cluster (see simulator/cli.py)

URL is anything serialx opens: /dev/ttyUSB0, socket://host:port, rfc2217://host:port, esphome://...
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from . import cli
from .detect import DEFAULT_BAUDS, DETECT_TIMEOUT
from .simulator import cli as simulator_cli


def _hex_byte(text: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hex CID2: {text!r}") from None
    if not 0 <= value <= 0xFF:
        raise argparse.ArgumentTypeError(f"CID2 is one byte, not {text!r}")
    return value


def _bauds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a baud list: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m custom_components.lfp_bms.bms", description="Talk to a PACE-family LiFePO4 battery cluster."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def link_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("url", help="serial device or serialx URL (socket://host:port, rfc2217://…)")
        sub.add_argument(
            "--baud",
            type=_bauds,
            default=list(DEFAULT_BAUDS),
            help="baud rates to try, in order (default " + ",".join(map(str, DEFAULT_BAUDS)) + ")",
        )
        sub.add_argument("--timeout", type=float, default=DETECT_TIMEOUT, help="bound of detection in seconds")
        return sub

    link_command("scan", "detect baud, protocol, addresses and identity, stage by stage")
    read = link_command("read", "detect, then read every pack once")
    read.add_argument("--json", action="store_true", help="JSON instead of a table")
    watch = link_command("watch", "detect, then read repeatedly until Ctrl-C")
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between reads (default 5)")
    watch.add_argument("--count", type=int, default=0, help="stop after this many reads (default 0 = never)")

    decode = commands.add_parser("decode", help="decode one reply frame")
    decode.add_argument(
        "--command", dest="cid2", type=_hex_byte, required=True, help="CID2 of the request, hex (42, 44, C1, …)"
    )
    decode.add_argument("--json", action="store_true", help="JSON instead of text")
    decode.add_argument("frame", help=r"the reply as text, e.g. '~25014600…E1E4\r'")

    simulate = commands.add_parser("simulate", help="serve a simulated cluster until interrupted")
    simulator_cli.add_arguments(simulate)
    return parser


async def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed command line; the exit status."""
    match args.command:
        case "scan":
            return await cli.scan(args.url, bauds=args.baud, timeout=args.timeout)
        case "read":
            return await cli.read(args.url, as_json=args.json, bauds=args.baud, timeout=args.timeout)
        case "watch":
            return await cli.watch(
                args.url, interval=args.interval, count=args.count, bauds=args.baud, timeout=args.timeout
            )
        case "decode":
            return cli.decode(args.cid2, args.frame, as_json=args.json)
        case "simulate":
            return await simulator_cli.run(args)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        # Ctrl-C is how `watch` ends.
        return cli.EXIT_OK if args.command == "watch" else 130
    except BrokenPipeError:
        # The reader of our output (e.g. `| head`) went away; keep the interpreter's final flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
