"""Modbus RTU responders: the simulated packs as PACE Modbus or Seplos V3 slaves on an RS485 bus.

Every pack answers only its own slave id (both documents); an offline, sleeping or rebooting pack is silent. A
read outside the map, or a write to a register that is not writable, gets exception 02; a function the map does
not have gets 01; a parameter write the BMS would not accept (out of range, inconsistent group) gets 03 and
changes nothing. Register images are built from the same physics as the ASCII responders.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping

from .. import pace_params as pp
from ..driver import ProtocolName
from ..frame import FrameError
from ..modbus import pace_modbus as pm
from ..modbus import seplos_v3 as s3
from ..modbus.codec import (
    ExceptionCode,
    FunctionCode,
    ModbusRequest,
    decode_request,
    encode_exception,
    encode_read_reply,
    encode_write_reply,
    pack_coils,
    pack_registers,
    request_frame_length,
    with_crc,
)
from ..models import Condition
from .physics import Cluster, PackModel
from .responders import _apply_group, _settings_to_groups

MODBUS_PROTOCOLS = frozenset({ProtocolName.PACE_MODBUS, ProtocolName.SEPLOS_V3})


class _RefusedError(Exception):
    def __init__(self, code: ExceptionCode) -> None:
        super().__init__(code.name)
        self.code = code


def split_requests(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete request frames at the start of `buffer` and the rest. A candidate whose CRC fails costs one byte
    (resynchronisation on noise); an incomplete one waits for more bytes."""
    frames: list[bytes] = []
    while True:
        length = request_frame_length(buffer)
        if length is None or len(buffer) < length:
            return frames, buffer
        candidate = buffer[:length]
        try:
            decode_request(candidate)
        except FrameError:
            buffer = buffer[1:]
            continue
        frames.append(candidate)
        buffer = buffer[length:]


def readdressed(reply: bytes) -> bytes:
    """The same reply from the next slave id (the wrong_addr fault), with a valid CRC."""
    return with_crc(bytes(((reply[0] + 1) & 0xFF,)) + reply[1:-2])


def _kelvin(celsius: float) -> int:
    return round(celsius * 10) + s3.KELVIN_OFFSET


def _flags[T](active: frozenset[T] | set[T], table: Mapping[int, T]) -> int:
    return sum(1 << bit for bit, flag in table.items() if flag in active)


class ModbusResponder(ABC):
    """Answers one request frame from the cluster's packs; None = silence."""

    protocol: ProtocolName

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        #: The master of a Seplos V3 group: the pack with the lowest id keeps the EIA/EIB totals.
        self.master = cluster.packs[0]

    def respond_raw(self, frame: bytes) -> bytes | None:
        try:
            request = decode_request(frame)
        except FrameError:
            return None
        if not self.cluster.has_pack(request.slave):
            return None
        pack = self.cluster.pack(request.slave)
        if not (pack.reachable and self.cluster.time_s >= pack.reboot_until):
            return None
        try:
            return self.handle(request, pack)
        except _RefusedError as refused:
            return encode_exception(request, refused.code)

    @abstractmethod
    def handle(self, request: ModbusRequest, pack: PackModel) -> bytes:
        """The reply frame; raise _RefusedError for an exception reply."""

    @staticmethod
    def read_from(image: Mapping[int, int], request: ModbusRequest) -> bytes:
        """Registers of `image` for a read, exception 02 when any is outside it."""
        wanted = range(request.address, request.address + request.count)
        if any(r not in image for r in wanted):
            raise _RefusedError(ExceptionCode.ILLEGAL_DATA_ADDRESS)
        return encode_read_reply(request, pack_registers([image[r] for r in wanted]))


class PaceModbusResponder(ModbusResponder):
    """PACE Modbus V1.3: FC 0x03 over registers 0-36, 60-114, 150-179; FC 0x10 over 60-114."""

    protocol = ProtocolName.PACE_MODBUS

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        #: Registers 113-114 (charge over-current 2) are kept per pack as written; the physics does not use them.
        self._extra: dict[int, dict[int, int]] = {p.address: {113: 150, 114: 40} for p in cluster.packs}

    def handle(self, request: ModbusRequest, pack: PackModel) -> bytes:
        if request.function is FunctionCode.READ_HOLDING_REGISTERS:
            return self.read_from(self.image(pack), request)
        if request.function is FunctionCode.WRITE_MULTIPLE_REGISTERS:
            self._write(request, pack)
            return encode_write_reply(request)
        raise _RefusedError(ExceptionCode.ILLEGAL_FUNCTION)

    def image(self, pack: PackModel) -> dict[int, int]:
        """Every readable register of `pack` now."""
        return {**self.status_registers(pack), **self.parameter_registers(pack), **self._identity(pack)}

    @staticmethod
    def status_registers(pack: PackModel) -> dict[int, int]:
        analog, status = pack.analog(), pack.status()
        cells = [*analog.cell_voltages_mv, *(0,) * 16][:16]
        cell_temps = [*(round(t * 10) for t in analog.cell_temperatures_c), *(0,) * 4][:4]
        flags = _flags(status.faults, pm.FAULT_BITS)
        for bit, on in (
            (pm.STATUS_CHARGING, status.charging),
            (pm.STATUS_DISCHARGING, status.discharging),
            (pm.STATUS_CHARGE_MOS, status.charge_mos_on),
            (pm.STATUS_DISCHARGE_MOS, status.discharge_mos_on),
            (pm.STATUS_HEATER, status.heater_on),
        ):
            flags |= bool(on) << bit
        values = [
            round(analog.current_a * 100),
            round(analog.voltage_v * 100),
            round(analog.soc_pct),
            round(analog.soh_pct or 0),
            round(analog.remaining_ah * 100),
            round(analog.full_ah * 100),
            round((analog.design_ah or 0) * 100),
            analog.cycles,
            0,
            _flags(status.warnings, pm.WARNING_BITS),
            _flags(status.protections, pm.PROTECTION_BITS),
            flags,
            sum(1 << (cell - 1) for cell in status.balancing_cells if 1 <= cell <= 16),
            0,
            0,
            *cells,
            *cell_temps,
            round((analog.mosfet_temperature_c or 0) * 10),
            round((analog.environment_temperature_c or 0) * 10),
        ]
        return {r: v & 0xFFFF for r, v in enumerate(values)}

    def parameter_registers(self, pack: PackModel) -> dict[int, int]:
        image: dict[int, int] = dict(self._extra[pack.address])
        for group in _settings_to_groups(pack.settings).values():
            if type(group) in pm.GROUP_SPANS:
                for start, words in pm.group_to_registers(group):
                    image.update({start + i: w for i, w in enumerate(words)})
        return image

    @staticmethod
    def _identity(pack: PackModel) -> dict[int, int]:
        text = [
            *pm.encode_text(pack.model),
            *pm.encode_text(pack.bms_serial.strip()),
            *pm.encode_text(pack.pack_serial.strip()),
        ]
        return {pm.VERSION_START + i: w for i, w in enumerate(text)}

    def _write(self, request: ModbusRequest, pack: PackModel) -> None:
        current = self.parameter_registers(pack)
        written = dict(zip(range(request.address, request.address + request.count), request.values, strict=True))
        if any(r not in current for r in written):
            raise _RefusedError(ExceptionCode.ILLEGAL_DATA_ADDRESS)
        image = {**current, **written}
        settings = pack.settings
        for group_type, spans in pm.GROUP_SPANS.items():
            touched = any(span.start + i in written for span in spans for i in range(len(span.fields)))
            if not touched:
                continue
            words = [[image[span.start + i] for i in range(len(span.fields))] for span in spans]
            try:
                group = pm.group_from_registers(group_type, words)
                group.validate()
            except pp.ParameterError, FrameError:
                raise _RefusedError(ExceptionCode.ILLEGAL_DATA_VALUE) from None
            settings = _apply_group(settings, group)
        pack.apply_settings(settings)
        self._extra[pack.address].update({r: v for r, v in written.items() if r in self._extra[pack.address]})


class SeplosV3Responder(ModbusResponder):
    """Seplos V3 (XZH V0.1): FC 0x04 over PIA, PIB, VIA (and EIA/EIB on the master), FC 0x01 over PIC. Read-only."""

    protocol = ProtocolName.SEPLOS_V3

    def handle(self, request: ModbusRequest, pack: PackModel) -> bytes:
        if request.function is FunctionCode.READ_INPUT_REGISTERS:
            image = {**self.pia(pack), **self.pib(pack), **self.via(pack)}
            if pack is self.master:
                image |= self.eia() | self.eib()
            return self.read_from(image, request)
        if request.function is FunctionCode.READ_COILS:
            pic = self.pic(pack)
            wanted = range(request.address, request.address + request.count)
            if any(not s3.PIC_START <= c < s3.PIC_START + s3.PIC_COUNT for c in wanted):
                raise _RefusedError(ExceptionCode.ILLEGAL_DATA_ADDRESS)
            return encode_read_reply(request, pack_coils([pic[c - s3.PIC_START] for c in wanted]))
        raise _RefusedError(ExceptionCode.ILLEGAL_FUNCTION)

    @staticmethod
    def pia(pack: PackModel) -> dict[int, int]:
        analog = pack.analog()
        cells = analog.cell_voltages_mv or (0,)
        temps = analog.cell_temperatures_c or (0.0,)
        values = [
            round(analog.voltage_v * 100),
            round(analog.current_a * 100),
            round(analog.remaining_ah * 100),
            round(analog.full_ah * 100),
            round(pack.bms_counters.discharged_ah / 10),
            round(pack.soc_pct * 10),
            round(pack.soh_pct * 10),
            analog.cycles,
            round(sum(cells) / len(cells)),
            _kelvin(sum(temps) / len(temps)),
            max(cells),
            min(cells),
            _kelvin(max(temps)),
            _kelvin(min(temps)),
            0,
            pack.settings.discharge_oc_alarm_a,
            pack.settings.charge_oc_alarm_a,
        ]
        return {s3.PIA_START + i: v & 0xFFFF for i, v in enumerate(values)}

    @staticmethod
    def pib(pack: PackModel) -> dict[int, int]:
        analog = pack.analog()
        cells = [*analog.cell_voltages_mv, *(0,) * 16][:16]
        temps = [*(_kelvin(t) for t in analog.cell_temperatures_c), *(s3.KELVIN_OFFSET,) * 8][:8]
        values = [
            *cells,
            *temps,
            _kelvin(analog.environment_temperature_c or 0.0),
            _kelvin(analog.mosfet_temperature_c or 0.0),
        ]
        return {s3.PIB_START + i: v & 0xFFFF for i, v in enumerate(values)}

    @staticmethod
    def pic(pack: PackModel) -> list[bool]:
        status = pack.status()
        data = bytearray(s3.PIC_COUNT // 8)
        for index, table in s3.EVENT_BITS.items():
            for bit, (condition, protection) in table.items():
                if index == s3.PIC_CURRENT_2:
                    continue  # latched forms: the physics has no latch
                if condition in (status.protections if protection else status.warnings):
                    data[index] |= 1 << bit
        if Condition.FIRE in status.protections:
            data[s3.PIC_FAULT] |= 1 << s3.FAULT_AEROSOL
        data[s3.PIC_FAULT] |= _flags(status.faults, s3.FAULT_BITS)
        for n, code in enumerate(status.cell_alarm_codes[:16]):
            if code == 1:
                data[s3.PIC_CELL_LOW[n // 8]] |= 1 << (n % 8)
            elif code == 2:
                data[s3.PIC_CELL_HIGH[n // 8]] |= 1 << (n % 8)
        for n, code in enumerate(status.temperature_alarm_codes[:4]):
            if code:
                data[s3.PIC_TEMP_HIGH if code == 2 else s3.PIC_TEMP_LOW] |= 1 << n
        for cell in status.balancing_cells:
            if 1 <= cell <= 16:
                data[s3.PIC_BALANCING[(cell - 1) // 8]] |= 1 << ((cell - 1) % 8)
        system = {
            s3.SYSTEM_DISCHARGE: status.discharging,
            s3.SYSTEM_CHARGE: status.charging,
            s3.SYSTEM_FULL: status.fully_charged,
        }
        data[s3.PIC_SYSTEM] = sum(1 << bit for bit, on in system.items() if on)
        fet = {
            s3.FET_DISCHARGE: status.discharge_mos_on,
            s3.FET_CHARGE: status.charge_mos_on,
            s3.FET_HEATER: status.heater_on,
        }
        data[s3.PIC_FET] = sum(1 << bit for bit, on in fet.items() if on)
        return [bool(data[n // 8] >> (n % 8) & 1) for n in range(s3.PIC_COUNT)]

    @staticmethod
    def via(pack: PackModel) -> dict[int, int]:
        fields = (
            (s3.FACTORY_NAME, 20),
            (f"SG{pack.spec.cells}S{round(pack.spec.design_ah)}A-SIM", 20),
            ("15", 2),
            (pack.bms_serial.strip(), 30),
            (pack.pack_serial.strip(), 30),
        )
        data = b"".join(text.encode("ascii")[:size].ljust(size, b"\x00") for text, size in fields)
        return {s3.VIA_START + i // 2: int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)}

    def _online(self) -> list[PackModel]:
        return [p for p in self.cluster.packs if p.reachable]

    def eia(self) -> dict[int, int]:
        online = self._online() or [self.master]
        analogs = [p.analog() for p in online]

        def u32(value: int) -> list[int]:
            value &= 0xFFFFFFFF
            return [value & 0xFFFF, value >> 16]  # low word first, as captured

        full = sum(a.full_ah for a in analogs)
        soc = sum(p.soc_pct * a.full_ah for p, a in zip(online, analogs, strict=True)) / full if full else 0.0
        values = [
            *u32(round(sum(a.voltage_v for a in analogs) / len(analogs) * 100)),
            *u32(round(sum(a.current_a for a in analogs) * 10)),
            *u32(round(sum(a.remaining_ah for a in analogs) * 100)),
            *u32(round(full * 100)),
            *u32(round(sum(p.bms_counters.discharged_ah for p in online) / 10)),
            *u32(round(sum(p.spec.design_ah for p in online) * 100)),
            *u32(sum(1 << p.address for p in online)),
            *u32(sum(1 << p.address for p in online if p.protections)),
            *u32(sum(p.settings.discharge_oc_alarm_a for p in online) * 10),
            *u32(sum(p.settings.charge_oc_alarm_a for p in online) * 10),
            round(self.master.settings.pack_ov_alarm_mv / 100),
            round(self.master.settings.pack_uv_alarm_mv / 100),
            len(online),
            max(a.cycles for a in analogs),
            round(soc * 10),
            round(min(p.soh_pct for p in online) * 10),
        ]
        return {s3.EIA_START + i: v for i, v in enumerate(values)}

    def eib(self) -> dict[int, int]:
        analogs = [p.analog() for p in self._online() or [self.master]]
        cells = [(mv, a.address, n + 1) for a in analogs for n, mv in enumerate(a.cell_voltages_mv)]
        hi, lo = max(cells), min(cells)
        packs = [(round(a.voltage_v * 100), a.address) for a in analogs]
        values = [hi[0], lo[0], hi[2], lo[2], max(packs)[0], min(packs)[0], max(packs)[1], min(packs)[1]]
        values += [0] * (s3.EIB_COUNT - len(values))
        return {s3.EIB_START + i: v for i, v in enumerate(values)}


def make_modbus_responder(protocol: ProtocolName, cluster: Cluster) -> ModbusResponder:
    """The responder of a Modbus protocol."""
    if protocol is ProtocolName.PACE_MODBUS:
        return PaceModbusResponder(cluster)
    return SeplosV3Responder(cluster)
