"""Bounded fuzzing of every decoder: random and mutated frames may only ever raise the library's own BmsError.

The decoder table, the seed corpus (real captures from tests/data/captures.md and simulator output of all four protocol
families) and the mutator are shared with `scripts/fuzz`, which runs the same thing for millions of inputs.
"""

import random
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.lfp_bms.bms import family20 as f20
from custom_components.lfp_bms.bms import pace
from custom_components.lfp_bms.bms import pace_params as pp
from custom_components.lfp_bms.bms.driver import ALL_PACKS, ProtocolName
from custom_components.lfp_bms.bms.frame import BmsError, Frame, FrameError, decode_frame, encode_frame, split_frames
from custom_components.lfp_bms.bms.modbus import codec as mb
from custom_components.lfp_bms.bms.modbus import pace_modbus as pm
from custom_components.lfp_bms.bms.modbus import seplos_v3 as s3
from custom_components.lfp_bms.bms.pace_params import PARAMETER_GROUPS
from custom_components.lfp_bms.bms.registry import DRIVERS, make_frame_driver
from custom_components.lfp_bms.bms.simulator import Cluster, LinkMode, SimulatorConfig, make_responder
from custom_components.lfp_bms.bms.simulator.modbus import make_modbus_responder

#: The real frames, with their sources (inside the repository, so that a clean clone tests itself).
CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures.md"
#: Frames as tests/data/captures.md writes them: SOI, hex, a literal "\r".
_CAPTURE_FRAME = re.compile(r"~[0-9A-Fa-f]{16,}\\r")
#: Modbus RTU frames (§E), written `rtu:HEX BYTES`.
_CAPTURE_RTU = re.compile(r"`rtu:([0-9A-Fa-f ]+)`")


def _frame(info: bytes, *, ver: int = 0x25, adr: int = 1, cid1: int = 0x46, rtn: int = 0) -> Frame:
    """A reply frame around `info` (the raw bytes are not looked at by the payload decoders)."""
    return Frame(ver=ver, adr=adr, cid1=cid1, cid2=rtn, info=info, raw=b"")


def _pace_driver_decoders(command: int | None) -> dict[str, Callable[[bytes], object]]:
    driver = pace.PaceDriver()
    return {
        f"PaceDriver.decode_analog[{command}]": lambda info: driver.decode_analog(_frame(info), command),
        f"PaceDriver.decode_status[{command}]": lambda info: driver.decode_status(_frame(info), command),
    }


def _family20_driver_decoders(name: ProtocolName) -> dict[str, Callable[[bytes], object]]:
    # A fresh driver per input: the Pylon driver locks its units on the first record it judges.
    return {
        f"{name}.decode_analog": lambda info: make_frame_driver(name).decode_analog(_frame(info, ver=0x20)),
        f"{name}.decode_status": lambda info: make_frame_driver(name).decode_status(_frame(info, ver=0x20)),
    }


def _words(data: bytes, count: int) -> tuple[int, ...]:
    """`count` registers from the start of `data` (FrameError when too short or odd), as a reply would give them."""
    if len(data) < 2 * count:
        raise FrameError("too short for the register block")
    return mb.registers(data[: 2 * count])


def _group_decoder(group: type[pp.ParameterGroup]) -> Callable[[bytes], object]:
    sizes = [len(span.fields) for span in pm.GROUP_SPANS[group]]

    def decode(data: bytes) -> object:
        words = _words(data, sum(sizes))
        spans, at = [], 0
        for size in sizes:
            spans.append(words[at : at + size])
            at += size
        return pm.group_from_registers(group, spans)

    return decode


#: The Modbus requests whose replies the drivers decode (a raw input is tried as the reply to each).
MODBUS_REQUESTS = (
    pm.PaceModbusDriver.status_request(1),
    s3.SeplosV3Driver.factory_request(0),
    mb.ModbusRequest.read(1, mb.FunctionCode.READ_INPUT_REGISTERS, s3.PIA_START, s3.PIA_COUNT),
    mb.ModbusRequest.read(1, mb.FunctionCode.READ_COILS, s3.PIC_START, s3.PIC_COUNT),
    mb.ModbusRequest.write(1, 64, (3550, 3650, 3400, 10)),
)


def _modbus_decoders() -> dict[str, Callable[[bytes], object]]:
    decoders: dict[str, Callable[[bytes], object]] = {
        f"modbus.decode_reply[{r.slave}/{r.function:#04x}/{r.address:#06x}]": (
            lambda data, request=r: mb.decode_reply(request, data)  # type: ignore[misc]
        )
        for r in MODBUS_REQUESTS
    }
    decoders |= {
        "modbus.decode_request": mb.decode_request,
        "modbus.coils": lambda d: mb.coils(d, s3.PIC_COUNT),
        "pace_modbus.decode_status_block": lambda d: pm.decode_status_block(_words(d, pm.STATUS_COUNT), 1),
        "pace_modbus.decode_text": lambda d: pm.decode_text(_words(d, len(d) // 2)),
        "seplos_v3.decode_pia_pib": lambda d: s3.decode_pia_pib(
            _words(d, s3.PIA_COUNT), _words(d[2 * s3.PIA_COUNT :], s3.PIB_COUNT), 0
        ),
        "seplos_v3.decode_pic": lambda d: s3.decode_pic(d, 0),
        "seplos_v3.decode_system": lambda d: s3.decode_system(
            _words(d, s3.EIA_COUNT), _words(d[2 * s3.EIA_COUNT :], s3.EIB_COUNT) if len(d) > 60 else None
        ),
        "seplos_v3.decode_identity": s3.decode_identity,
    }
    return decoders | {f"pace_modbus.{g.__name__}": _group_decoder(g) for g in pm.GROUP_SPANS}


def _driver_decoders() -> dict[str, Callable[[bytes], object]]:
    decoders: dict[str, Callable[[bytes], object]] = {}
    for command in (None, ALL_PACKS, 1, 2):
        decoders |= _pace_driver_decoders(command)
    for name in (ProtocolName.PYLON, ProtocolName.SEPLOS, ProtocolName.EG4):
        decoders |= _family20_driver_decoders(name)
    return decoders


#: name → decoder of one reply INFO (or of a frame built around it).
DECODERS: dict[str, Callable[[bytes], object]] = {
    **_driver_decoders(),
    **_modbus_decoders(),
    "pace.decode_pack_count": pace.decode_pack_count,
    "pace.Capacities.decode": pace.Capacities.decode,
    "pace.SwitchReply.decode": pace.SwitchReply.decode,
    "pace.decode_mos_reply": lambda i: pace.decode_mos_reply(_frame(i)),
    "pace.decode_clock": pace.decode_clock,
    "pace.decode_history": pace.decode_history,
    "pace.decode_model": pace.decode_model,
    "pace.decode_serials": pace.decode_serials,
    **{f"pace_params.{group.__name__}.decode": group.decode for group in PARAMETER_GROUPS},
    "f20.decode_pylon_analog_info": lambda i: f20.decode_pylon_analog_info(i, 2),
    "f20.decode_pylon_analog_info[clone]": lambda i: f20.decode_pylon_analog_info(i, 2, f20.PYLON_PACE_CLONE),
    "f20.decode_pylon_status_info": lambda i: f20.decode_pylon_status_info(i, 2),
    "f20.decode_manufacturer_info": f20.decode_manufacturer_info,
    "f20.decode_pylon_system_parameters": f20.decode_pylon_system_parameters,
    "f20.decode_pylon_charge_management": f20.decode_pylon_charge_management,
    "f20.decode_pylon_serial_number": f20.decode_pylon_serial_number,
    "f20.decode_pylon_software_version": f20.decode_pylon_software_version,
    "f20.decode_seplos_analog_info": lambda i: f20.decode_seplos_analog_info(i, 0),
    "f20.decode_seplos_status_info": lambda i: f20.decode_seplos_status_info(i, 0),
    "f20.decode_eg4_analog_info": lambda i: f20.decode_eg4_analog_info(i, 1),
    "f20.decode_eg4_status_info": lambda i: f20.decode_eg4_status_info(i, 1),
    "f20.decode_eg4_clock": f20.decode_eg4_clock,
    "f20.decode_eg4_hardware_info": f20.decode_eg4_hardware_info,
    "f20.classify_analog_reply": lambda i: f20.classify_analog_reply(_frame(i, ver=0x20)),
}


def decode_everything(data: bytes) -> None:
    """Push raw wire bytes through the framing and, when a frame comes out, its INFO through every decoder.

    Raw bytes that do not frame are also fed to the decoders as INFO, so that each decoder sees arbitrary input
    and not only what survives the checksum. Anything but a BmsError propagates.
    """
    candidates, _ = split_frames(data)
    infos = [data]
    for raw in (*candidates, data):
        try:
            infos.append(decode_frame(raw).info)
        except BmsError:
            continue
    for info in infos:
        for decoder in DECODERS.values():
            try:
                decoder(info)
            except BmsError:
                continue


@cache
def capture_frames() -> tuple[bytes, ...]:
    """Every frame quoted in tests/data/captures.md (requests and replies), as wire bytes."""
    text = CAPTURES.read_text(encoding="utf-8")
    return tuple(match.replace("\\r", "\r").encode("ascii") for match in _CAPTURE_FRAME.findall(text))


@cache
def simulator_frames() -> tuple[bytes, ...]:
    """Analog and status replies of the simulator for each protocol family and link mode, 1 and 3 packs."""
    frames: list[bytes] = []
    for protocol in DRIVERS:
        for link in LinkMode:
            for packs in (1, 3):
                config = SimulatorConfig(packs=packs, protocol=protocol, link=link, tails=(0, 1, 8, 14)[packs % 4])
                cluster = Cluster(config.pack_specs(), seed=packs)
                cluster.advance(600)
                responder = make_responder(protocol, cluster, link)
                driver = make_frame_driver(protocol)
                first = config.first_address()
                for adr, selector in ((first, ALL_PACKS), (first, first), (first + packs - 1, first + packs - 1)):
                    for request in (driver.analog_request(adr, selector), driver.status_request(adr, selector)):
                        reply = responder.respond(decode_frame(request))
                        if reply is not None:
                            frames.append(reply)
    return tuple(frames)


@cache
def modbus_frames() -> tuple[bytes, ...]:
    """The Modbus frames of tests/data/captures.md §E and the simulated Modbus packs' replies to the drivers'
    requests (also the data part of each, so that the block decoders see well-formed input)."""
    frames = [bytes.fromhex(h) for h in _CAPTURE_RTU.findall(CAPTURES.read_text(encoding="utf-8"))]
    for protocol in (ProtocolName.PACE_MODBUS, ProtocolName.SEPLOS_V3):
        config = SimulatorConfig(packs=2, protocol=protocol)
        cluster = Cluster(config.pack_specs(), seed=2)
        cluster.advance(600)
        responder = make_modbus_responder(protocol, cluster)
        first = config.first_address()
        for request in (
            mb.ModbusRequest.read(first, mb.FunctionCode.READ_HOLDING_REGISTERS, 0, pm.STATUS_COUNT),
            mb.ModbusRequest.read(first, mb.FunctionCode.READ_HOLDING_REGISTERS, 60, 55),
            mb.ModbusRequest.read(first, mb.FunctionCode.READ_INPUT_REGISTERS, s3.PIA_START, s3.PIA_COUNT),
            mb.ModbusRequest.read(first, mb.FunctionCode.READ_INPUT_REGISTERS, s3.PIB_START, s3.PIB_COUNT),
            mb.ModbusRequest.read(first, mb.FunctionCode.READ_INPUT_REGISTERS, s3.EIA_START, s3.EIA_COUNT),
            mb.ModbusRequest.read(first, mb.FunctionCode.READ_INPUT_REGISTERS, s3.VIA_START, s3.VIA_COUNT),
            mb.ModbusRequest.read(first, mb.FunctionCode.READ_COILS, s3.PIC_START, s3.PIC_COUNT),
        ):
            reply = responder.respond_raw(request.encode())
            if reply is not None:
                frames += [reply, reply[3:-2]]
    return tuple(frames)


def seed_corpus() -> tuple[bytes, ...]:
    return capture_frames() + simulator_frames() + modbus_frames()


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """One to four random edits of a frame: a changed byte or hex digit, a cut, a duplicate, an insertion."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        if not data:
            data.append(rng.randrange(256))
            continue
        pos = rng.randrange(len(data))
        match rng.randrange(6):
            case 0:
                data[pos] = rng.randrange(256)
            case 1:
                data[pos] = rng.choice(b"0123456789ABCDEF")
            case 2:
                del data[pos:]
            case 3:
                end = min(len(data), pos + rng.randint(1, 16))
                data[pos:pos] = data[pos:end]
            case 4:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            case _:
                del data[pos : pos + rng.randint(1, 8)]
    return bytes(data)


def reframe(data: bytes, template: bytes) -> bytes:
    """`data` as the INFO of a checksum-valid frame with the header of `template`: reaches the payload decoders
    with arbitrary INFO (a mutated frame almost never passes the checksum)."""
    try:
        head = decode_frame(template)
    except BmsError:
        return data
    return encode_frame(head.ver, head.adr, head.cid1, head.cid2, data[:2000])


def test_corpus_is_real() -> None:
    """The seed corpus holds the captures (all of which frame cleanly) and replies of every protocol family."""
    captures = capture_frames()
    assert len(captures) >= 60
    for raw in captures:
        decode_frame(raw)
    families = {decode_frame(raw).cid1 for raw in simulator_frames()} | {
        decode_frame(raw).ver for raw in simulator_frames()
    }
    assert {0x25, 0x20, 0x46, 0x4A} <= families
    # Modbus: the 19 frames of §E and the replies of both simulated maps (with their data parts).
    rtu = modbus_frames()
    assert len([f for f in rtu if mb.crc_ok(f)]) >= 19 + 10


_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    """Arbitrary bytes, as wire data and as INFO."""
    decode_everything(data)


@_SETTINGS
@given(st.integers(min_value=0), st.data())
def test_mutated_frames(seed: int, data: st.DataObject) -> None:
    """Mutated captures and simulator replies, raw and re-framed so that the payload passes the checksum."""
    corpus = seed_corpus()
    rng = random.Random(seed)
    original = data.draw(st.sampled_from(corpus))
    mutated = mutate(original, rng)
    decode_everything(mutated)
    try:
        info = decode_frame(original).info
    except BmsError:
        return
    decode_everything(reframe(mutate(info, rng), original))


@_SETTINGS
@given(st.lists(st.sampled_from(capture_frames() + simulator_frames()), max_size=4), st.binary(max_size=30))
def test_concatenated_frames(frames: list[bytes], noise: bytes) -> None:
    """Several frames with noise between them: split_frames yields candidates that all decode or fail cleanly,
    and every untouched frame comes out whole."""
    stream = noise.join(frames)
    candidates, _ = split_frames(stream)
    for raw in candidates:
        try:
            decode_frame(raw)
        except BmsError:
            continue
    if b"~" not in noise and b"\r" not in noise:
        assert candidates == frames
