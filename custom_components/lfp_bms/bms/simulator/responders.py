"""Request frame → reply bytes, per protocol, answering from the physics model with the library's own encoders.

Addressing (docs/protocol.md §1.7):

* `rs232-master`: the host is wired to the master (PACE DIP address 1; Pylon ADR 2). ADR 00 or the master's
  address reaches it. 0x42/0x44 INFO = FF returns every pack in one reply (count first, record address =
  position, offline packs as all-zero records); INFO = a slave address relays that slave (reply ADR = the
  request's). 0x90 returns the pack count. Every other command acts on the master only. A request whose ADR is
  a slave's is refused with RTN 09 — our reading of §1.7.1 ("all other CID2s address only the pack you are
  connected to") and §5 item 6 (whether a master relays them is undocumented; nkinnan: writes only work on the
  directly connected pack), made explicit so that a client learns it instead of timing out.
* `rs485`: every pack on the bus answers frames carrying its own ADR (0x42/0x44 with INFO = its address, 0x90
  probe, identity, parameters and writes per pack). Nothing answers other addresses, nor offline, sleeping or
  rebooting packs (silence → client timeout).

Refusals: unknown CID2 → RTN 04; an INFO of the wrong size → RTN 05; a write the BMS rejects (out of range,
inconsistent, MOSFET rules of §1.9.7) → RTN 09; a request with another VER → RTN 01 carrying our VER (a
detector learns the VER from the reply, §1.11); another CID1 → silence.
"""

import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from .. import family20 as f20
from .. import pace
from .. import pace_params as pp
from ..driver import ALL_PACKS, ProtocolName
from ..frame import Frame, FrameError, Rtn, decode_frame, encode_frame
from ..models import IDLE_CURRENT_A, Condition, PackAnalog, PackStatus
from .faults import Nonsense
from .physics import Cluster, HistoryRecord, PackModel, ProtectionSettings


class LinkMode(StrEnum):
    """How the host is wired to the cluster."""

    RS232_MASTER = "rs232-master"
    RS485 = "rs485"


#: PACE 0x25 tail variants: tail length → the marker byte P real packs send with it (docs/protocol.md §1.9.2).
TAIL_MARKERS = {0: 3, 1: 2, 8: 2, 14: 9}


class RequestRefusedError(Exception):
    """Raised inside a handler to answer with a non-zero RTN (and, rarely, an INFO)."""

    def __init__(self, rtn: int, info: bytes = b"") -> None:
        super().__init__(f"RTN {rtn:02X}")
        self.rtn = rtn
        self.info = info


@dataclass(frozen=True, slots=True)
class Target:
    """Who answers a request: the pack that hears it and whether the master relays for a slave."""

    pack: PackModel
    is_master: bool


class Responder(ABC):
    """Answers one decoded request frame; None means silence (the host will time out)."""

    protocol: ProtocolName
    ver: int
    cid1: int
    #: RTN for a request this pack will not serve at this address (PACE documents only 09 for refusals).
    refuse_address_rtn: int = Rtn.OPERATION_REFUSED
    #: RTN for a request whose INFO is invalid or a write the BMS rejects.
    refuse_data_rtn: int = Rtn.OPERATION_REFUSED

    def __init__(self, cluster: Cluster, link: LinkMode) -> None:
        self.cluster = cluster
        self.link = link
        #: On the RS232 master link the master is the first pack (PACE address 1, Pylon ADR 2).
        self.master = cluster.packs[0]

    def respond(self, request: Frame) -> bytes | None:
        """The reply to `request` at the cluster's current simulated time, or None."""
        if request.cid1 != self.cid1:
            return None
        target = self.target(request.adr)
        if target is None or not self.answers(target.pack):
            return None
        if request.ver != self.ver:
            return self.reply(request.adr, Rtn.VER_ERROR)
        try:
            info = self.handle(request, target)
        except RequestRefusedError as refused:
            return self.reply(request.adr, refused.rtn, refused.info)
        if info is None:
            return None
        return self.reply(request.adr, Rtn.OK, info)

    def reply(self, adr: int, rtn: int, info: bytes = b"") -> bytes:
        return encode_frame(self.ver, adr, self.cid1, rtn, info)

    def answers(self, pack: PackModel) -> bool:
        """The BMS is powered, awake and not rebooting."""
        return pack.reachable and self.cluster.time_s >= pack.reboot_until

    def target(self, adr: int) -> Target | None:
        if self.link is LinkMode.RS232_MASTER:
            if adr in (0, self.master.address):
                return Target(self.master, is_master=True)
            if self.cluster.has_pack(adr):
                # The master hears a slave's ADR on its console port and refuses (see module docstring).
                return Target(self.master, is_master=False)
            return None
        if self.cluster.has_pack(adr):
            pack = self.cluster.pack(adr)
            return Target(pack, is_master=pack is self.master)
        return None

    @abstractmethod
    def handle(self, request: Frame, target: Target) -> bytes | None:
        """INFO of an RTN 00 reply, None for silence; raise RequestRefusedError for a refusal."""

    def falsifies(self, request: Frame) -> bool:
        """Whether `nonsense` can falsify the reply to `request` (the nonsense fault applies only there)."""
        return False

    def nonsense(self, request: Frame, reply: bytes, kind: Nonsense, rng: random.Random) -> bytes:
        """The reply with one implausible value of `kind` in one pack record, checksum-valid."""
        raise NotImplementedError

    # -- shared helpers

    def selected_packs(self, target: Target, command: int) -> list[PackModel] | None:
        """Which packs a 0x42/0x44 selector returns, per link mode; None = no such pack (silence)."""
        if self.link is LinkMode.RS232_MASTER:
            if not target.is_master:
                raise RequestRefusedError(self.refuse_address_rtn)
            if command == ALL_PACKS:
                return list(self.cluster.packs)
            if command in (0, self.master.address):
                return [self.master]
            if self.cluster.has_pack(command):
                return [self.cluster.pack(command)]  # relay (offline slave: the all-zero record)
            return None
        if command == target.pack.address:
            return [target.pack]
        if command == ALL_PACKS and target.is_master:
            return list(self.cluster.packs)
        raise RequestRefusedError(self.refuse_address_rtn)

    def only_master(self, target: Target) -> PackModel:
        """The pack a non-relayed command acts on; a slave's ADR through the master is refused."""
        if not target.is_master and self.link is LinkMode.RS232_MASTER:
            raise RequestRefusedError(self.refuse_address_rtn)
        return target.pack


def _exact(request: Frame, size: int) -> bytes:
    if len(request.info) != size:
        raise RequestRefusedError(Rtn.FORMAT_ERROR)
    return request.info


def _flags(conditions: frozenset[Condition] | set[Condition], table: dict[int, Condition]) -> int:
    return sum(1 << bit for bit, cond in table.items() if cond in conditions)


class PaceResponder(Responder):
    """PACE 0x25 (docs/protocol.md §1.9)."""

    protocol = ProtocolName.PACE25
    ver = 0x25
    cid1 = 0x46

    def __init__(self, cluster: Cluster, link: LinkMode, *, status_extra_byte: bool = False) -> None:
        super().__init__(cluster, link)
        self.status_extra_byte = status_extra_byte
        self._handlers: dict[int, Callable[[Frame, Target], bytes | None]] = {
            pace.Cid2.ANALOG: self._analog,
            pace.Cid2.STATUS: self._status,
            pace.Cid2.PACK_COUNT: self._pack_count,
            pace.Cid2.MODEL: self._model,
            pace.Cid2.SERIALS: self._serials,
            pace.Cid2.CAPACITY: self._capacity,
            pace.Cid2.READ_CLOCK: self._read_clock,
            pace.Cid2.WRITE_CLOCK: self._write_clock,
            pace.Cid2.HISTORY: self._history,
            pace.Cid2.SWITCH: self._switch,
            pace.Cid2.CHARGE_MOS: self._mos,
            pace.Cid2.DISCHARGE_MOS: self._mos,
            pace.Cid2.SHUTDOWN: self._shutdown,
        }
        self._params = ParameterTable()

    def handle(self, request: Frame, target: Target) -> bytes | None:
        handler = self._handlers.get(request.cid2)
        if handler is not None:
            return handler(request, target)
        if self._params.knows(request.cid2):
            pack = self.only_master(target)
            return self._params.handle(request.cid2, request.info, pack)
        raise RequestRefusedError(Rtn.CID2_INVALID)

    # -- 0x42 / 0x44

    def falsifies(self, request: Frame) -> bool:
        return request.cid2 == pace.Cid2.ANALOG

    def nonsense(self, request: Frame, reply: bytes, kind: Nonsense, rng: random.Random) -> bytes:
        frame = decode_frame(reply)
        if frame.rtn != Rtn.OK:
            return reply
        command = request.info[0] if request.info else ALL_PACKS
        records = pace.decode_analog_info(frame.info, frame.adr, command)
        present = [i for i, record in enumerate(records) if not record.absent]
        if not present:
            return reply
        index = rng.choice(present)
        records[index] = _falsify(records[index], kind, rng)
        return encode_frame(frame.ver, frame.adr, frame.cid1, frame.rtn, pace.encode_analog_info(records, command))

    def wire_analog(self, pack: PackModel, address: int) -> PackAnalog:
        """The PackAnalog exactly as the 0x42 decoder will rebuild it from our bytes (tail variant included)."""
        plain = pack.analog(address)
        tail = pace_tail(pack, plain)
        return pace.make_pack_analog(
            address=address,
            cell_voltages_mv=plain.cell_voltages_mv,
            temperatures_c=plain.temperatures_c,
            current_a=plain.current_a,
            voltage_v=plain.voltage_v,
            remaining_ah=plain.remaining_ah,
            full_ah=plain.full_ah,
            design_ah=plain.design_ah or 0.0,
            cycles=plain.cycles,
            marker=TAIL_MARKERS[pack.spec.tail],
            tail=tail,
        )

    def _analog(self, request: Frame, target: Target) -> bytes | None:
        command = _exact(request, 1)[0]
        packs = self.selected_packs(target, command)
        if packs is None:
            return None
        records = [self.wire_analog(p, i + 1 if command == ALL_PACKS else command) for i, p in enumerate(packs)]
        return pace.encode_analog_info(records, command)

    def _status(self, request: Frame, target: Target) -> bytes | None:
        command = _exact(request, 1)[0]
        packs = self.selected_packs(target, command)
        if packs is None:
            return None
        records = [pace_status(p, i + 1 if command == ALL_PACKS else command) for i, p in enumerate(packs)]
        return pace.encode_status_info(records, command, extra_byte=self.status_extra_byte)

    def _pack_count(self, request: Frame, target: Target) -> bytes:
        _exact(request, 0)
        if self.link is LinkMode.RS232_MASTER and not target.is_master:
            raise RequestRefusedError(Rtn.OPERATION_REFUSED)
        # A pack whose address is not 1 reports 1 (docs/protocol.md §1.9.1).
        return pace.encode_pack_count(len(self.cluster.packs) if target.is_master else 1)

    # -- identity, capacity, clock, history

    def _model(self, request: Frame, target: Target) -> bytes:
        _exact(request, 0)
        pack = self.only_master(target)
        # As captured: the model padded to 19 characters and a NUL (tests/data/captures.md §A.1 #6).
        return pace.encode_text(pack.model, 19) + b"\x00"

    def _serials(self, request: Frame, target: Target) -> bytes:
        _exact(request, 0)
        pack = self.only_master(target)
        return pace.encode_text(pack.bms_serial.strip(), 20) + pace.encode_text(pack.pack_serial.strip(), 20)

    def _capacity(self, request: Frame, target: Target) -> bytes:
        _exact(request, 0)
        pack = self.only_master(target)
        return pace.Capacities(
            remaining_ah=round(pack.remaining_ah, 2), full_ah=pack.full_ah, design_ah=pack.spec.design_ah
        ).encode()

    def _read_clock(self, request: Frame, target: Target) -> bytes:
        _exact(request, 0)
        return pace.encode_clock(self.only_master(target).clock(self.cluster.time_s))

    def _write_clock(self, request: Frame, target: Target) -> bytes:
        info = _exact(request, 6)
        pack = self.only_master(target)
        try:
            moment = pace.decode_clock(info)
        except FrameError:
            raise RequestRefusedError(Rtn.OPERATION_REFUSED) from None
        pack.set_clock(self.cluster.time_s, moment)
        return b""

    def _history(self, request: Frame, target: Target) -> bytes:
        index = int.from_bytes(_exact(request, 2), "big")
        pack = self.only_master(target)
        if index >= len(pack.history):
            return pace.encode_history(None)
        return pace.encode_history(pace_history(pack.history[index]))

    # -- switches and MOSFETs

    def _switch(self, request: Frame, target: Target) -> bytes:
        code = _exact(request, 1)[0]
        pack = self.only_master(target)
        try:
            command = pace.SwitchCommand(code)
        except ValueError:
            raise RequestRefusedError(Rtn.OPERATION_REFUSED) from None
        match command:
            case pace.SwitchCommand.BUZZER_ON | pace.SwitchCommand.BUZZER_OFF:
                pack.buzzer_enabled = command is pace.SwitchCommand.BUZZER_ON
            case pace.SwitchCommand.LED_ON | pace.SwitchCommand.LED_OFF:
                pack.led_alarm_enabled = command is pace.SwitchCommand.LED_ON
            case pace.SwitchCommand.LIMITER_ON | pace.SwitchCommand.LIMITER_OFF:
                pack.limiter_enabled = command is pace.SwitchCommand.LIMITER_ON
            case pace.SwitchCommand.LOW_GEAR | pace.SwitchCommand.HIGH_GEAR:
                pack.limiter_low_gear = command is pace.SwitchCommand.LOW_GEAR
        return pace.SwitchReply(command=code, control=control_byte(pack)).encode()

    def _mos(self, request: Frame, target: Target) -> bytes:
        value = _exact(request, 1)[0]
        pack = self.only_master(target)
        if value not in (pace.MOS_ON, pace.MOS_OFF):
            raise RequestRefusedError(Rtn.OPERATION_REFUSED)
        charge = request.cid2 == pace.Cid2.CHARGE_MOS
        if not pack.command_mos(charge=charge, on=value == pace.MOS_ON):
            # Refused with the system-state byte as INFO, as captured (`~25004609E00204FD2B`).
            raise RequestRefusedError(Rtn.OPERATION_REFUSED, bytes((system_byte(pack),)))
        return bytes((system_byte(pack),))

    def _shutdown(self, request: Frame, target: Target) -> bytes:
        if _exact(request, 1) != pace.SHUTDOWN_INFO:
            raise RequestRefusedError(Rtn.OPERATION_REFUSED)
        self.only_master(target).reboot(self.cluster.time_s)
        return b""


def _falsify(record: PackAnalog, kind: Nonsense, rng: random.Random) -> PackAnalog:
    """One implausible value in a decoded 0x42 record, as the wire carries it (0xFFFF, 0xFF, 0, s16 maximum)."""
    match kind:
        case Nonsense.TEMPERATURE:
            temps = list(record.temperatures_c)
            temps[rng.randrange(len(temps))] = pace.temperature_c(0xFFFF)
            return replace(record, temperatures_c=tuple(temps))
        case Nonsense.SOC:
            if record.tail:
                return replace(record, tail=b"\xff" + record.tail[1:])
            return replace(record, remaining_ah=655.35)
        case Nonsense.CELL:
            cells = list(record.cell_voltages_mv)
            cells[rng.randrange(len(cells))] = 0xFFFF
            return replace(record, cell_voltages_mv=tuple(cells))
        case Nonsense.PACK_ZERO:
            return replace(record, voltage_v=0.0)
        case Nonsense.POWER:
            return replace(record, current_a=327.67, voltage_v=65.535)
        case Nonsense.CURRENT:
            return replace(record, current_a=-327.68)


def pace_tail(pack: PackModel, analog: PackAnalog) -> bytes:
    """The pack's 0x25 tail variant (docs/protocol.md §1.9.2): SOC, design capacities, SOH, port voltage."""
    size = pack.spec.tail
    if size == 0:
        return b""
    soc = round(analog.soc_pct) if analog.full_ah else 0
    soh = round(analog.soh_pct or 0)
    design = round((analog.design_ah or 0.0) * 100).to_bytes(2, "big")
    if size == 1:
        return bytes((soc,))
    if size == 8:
        return bytes((soc,)) + design * 3 + bytes((soh,))
    port_mv = round(analog.voltage_v * 1000).to_bytes(2, "big")
    return bytes((soc,)) + design * 4 + bytes((soh,)) + port_mv + b"\x00\x00"


def system_byte(pack: PackModel) -> int:
    """Table C as the status encoder builds it (CFET, DFET, discharging, charging, heater)."""
    bits = {
        pace.SystemBit.CHARGE_MOS: pack.charge_mos_on,
        pace.SystemBit.DISCHARGE_MOS: pack.discharge_mos_on,
        pace.SystemBit.DISCHARGING: pack.current_a <= -IDLE_CURRENT_A,
        pace.SystemBit.CHARGING: pack.current_a >= IDLE_CURRENT_A,
        pace.SystemBit.HEATER: pack.heater_on,
    }
    return sum(1 << bit for bit, on in bits.items() if on)


def control_byte(pack: PackModel) -> int:
    """Table D after a 0x99 switch command, with the bits PbmsTools shows (tests/data/captures.md §A.2)."""
    bits = {
        pace.ControlBit.BUZZER: pack.buzzer_enabled,
        pace.ControlBit.CHARGE_MOS_OFF_BY_COMMAND: not pack.charge_mos_command_on,
        pace.ControlBit.DISCHARGE_MOS_OFF_BY_COMMAND: not pack.discharge_mos_command_on,
        pace.ControlBit.LOW_GEAR: pack.limiter_low_gear,
        pace.ControlBit.LIMITER: pack.limiter_enabled,
        pace.ControlBit.LED: pack.led_alarm_enabled,
    }
    return sum(1 << bit for bit, on in bits.items() if on)


def pace_status(pack: PackModel, address: int) -> PackStatus:
    """The 0x44 record of a pack, restricted to what PACE tables carry."""
    status = pack.status(address)
    carried = frozenset(pace.PROTECT_1.values()) | frozenset(pace.PROTECT_2.values())
    warn_carried = frozenset(pace.WARN_1.values()) | frozenset(pace.WARN_2.values())
    return replace(status, protections=status.protections & carried, warnings=status.warnings & warn_carried)


def pace_history(record: HistoryRecord) -> pace.HistoryRecord:
    """A physics history record as a 0xA1 record; the 12 undecoded trailer bytes carry the protect/warn flags
    in the positions of the PACE state bytes, then the padding seen in the capture (tests/data/captures.md §A.3)."""
    protect_1 = _flags(record.protections, dict(pace.PROTECT_1))
    protect_2 = _flags(record.protections, dict(pace.PROTECT_2))
    warn_1 = _flags(record.warnings, dict(pace.WARN_1))
    warn_2 = _flags(record.warnings, dict(pace.WARN_2))
    trailer = bytes((protect_1, protect_2, warn_1, warn_2, 0x00, 0x00, 0x00, 0x00)) + b"\xff" * 4
    return pace.HistoryRecord(
        timestamp=record.time,
        cell_voltages_mv=record.cell_voltages_mv,
        temperatures_c=record.temperatures_c,
        current_a=record.current_a,
        voltage_v=record.voltage_v,
        remaining_ah=record.remaining_ah,
        full_ah=record.full_ah,
        trailer=trailer,
    )


def _settings_to_groups(s: ProtectionSettings) -> dict[type[pp.ParameterGroup], pp.ParameterGroup]:
    """The parameter groups as the BMS reports them, from its settings."""
    groups: list[pp.ParameterGroup] = [
        pp.CellOverVoltage(
            alarm_v=s.cell_ov_alarm_mv / 1000,
            protect_v=s.cell_ov_protect_mv / 1000,
            release_v=s.cell_ov_release_mv / 1000,
            delay_s=s.cell_ov_delay_s,
        ),
        pp.PackOverVoltage(
            alarm_v=s.pack_ov_alarm_mv / 1000,
            protect_v=s.pack_ov_protect_mv / 1000,
            release_v=s.pack_ov_release_mv / 1000,
            delay_s=s.pack_ov_delay_s,
        ),
        pp.CellUnderVoltage(
            alarm_v=s.cell_uv_alarm_mv / 1000,
            protect_v=s.cell_uv_protect_mv / 1000,
            release_v=s.cell_uv_release_mv / 1000,
            delay_s=s.cell_uv_delay_s,
        ),
        pp.PackUnderVoltage(
            alarm_v=s.pack_uv_alarm_mv / 1000,
            protect_v=s.pack_uv_protect_mv / 1000,
            release_v=s.pack_uv_release_mv / 1000,
            delay_s=s.pack_uv_delay_s,
        ),
        pp.ChargeOverCurrent(alarm_a=s.charge_oc_alarm_a, protect_a=s.charge_oc_protect_a, delay_s=s.charge_oc_delay_s),
        pp.DischargeOverCurrent1(
            alarm_a=s.discharge_oc_alarm_a, protect_a=s.discharge_oc_protect_a, delay_s=s.discharge_oc_delay_s
        ),
        pp.DischargeOverCurrent2(protect_a=s.discharge_oc2_protect_a, delay_s=s.discharge_oc2_delay_s),
        pp.ShortCircuit(delay_us=s.short_circuit_delay_us),
        pp.Balancing(start_v=s.balance_start_mv / 1000, delta_mv=s.balance_delta_mv),
        pp.Sleep(cell_v=s.sleep_cell_mv / 1000, delay_min=s.sleep_delay_min),
        pp.FullChargeLowSoc(
            full_charge_v=s.full_charge_mv / 1000,
            full_charge_current_a=s.full_charge_ma / 1000,
            low_soc_pct=s.low_soc_pct,
        ),
        pp.ChargeDischargeOverTemperature(
            charge_alarm_c=s.charge_ot_alarm_c,
            charge_protect_c=s.charge_ot_protect_c,
            charge_release_c=s.charge_ot_release_c,
            discharge_alarm_c=s.discharge_ot_alarm_c,
            discharge_protect_c=s.discharge_ot_protect_c,
            discharge_release_c=s.discharge_ot_release_c,
        ),
        pp.ChargeDischargeUnderTemperature(
            charge_alarm_c=s.charge_ut_alarm_c,
            charge_protect_c=s.charge_ut_protect_c,
            charge_release_c=s.charge_ut_release_c,
            discharge_alarm_c=s.discharge_ut_alarm_c,
            discharge_protect_c=s.discharge_ut_protect_c,
            discharge_release_c=s.discharge_ut_release_c,
        ),
        pp.MosfetOverTemperature(alarm_c=s.mos_ot_alarm_c, protect_c=s.mos_ot_protect_c, release_c=s.mos_ot_release_c),
        pp.EnvironmentTemperature(
            under_alarm_c=s.env_ut_alarm_c,
            under_protect_c=s.env_ut_protect_c,
            under_release_c=s.env_ut_release_c,
            over_alarm_c=s.env_ot_alarm_c,
            over_protect_c=s.env_ot_protect_c,
            over_release_c=s.env_ot_release_c,
        ),
        pp.LimiterStartCurrent(current_a=s.limiter_start_a),
        pp.ProtocolSelection(
            can_protocol=s.can_protocol, rs485_protocol=s.rs485_protocol, selection_type=s.protocol_type
        ),
    ]
    return {type(g): g for g in groups}


def _mv(volts: float) -> int:
    return round(volts * 1000)


def _apply_group(s: ProtectionSettings, g: pp.ParameterGroup) -> ProtectionSettings:
    """New settings with one written group applied."""
    match g:
        case pp.CellOverVoltage():
            return replace(
                s,
                cell_ov_alarm_mv=_mv(g.alarm_v),
                cell_ov_protect_mv=_mv(g.protect_v),
                cell_ov_release_mv=_mv(g.release_v),
                cell_ov_delay_s=g.delay_s,
            )
        case pp.PackOverVoltage():
            return replace(
                s,
                pack_ov_alarm_mv=_mv(g.alarm_v),
                pack_ov_protect_mv=_mv(g.protect_v),
                pack_ov_release_mv=_mv(g.release_v),
                pack_ov_delay_s=g.delay_s,
            )
        case pp.CellUnderVoltage():
            return replace(
                s,
                cell_uv_alarm_mv=_mv(g.alarm_v),
                cell_uv_protect_mv=_mv(g.protect_v),
                cell_uv_release_mv=_mv(g.release_v),
                cell_uv_delay_s=g.delay_s,
            )
        case pp.PackUnderVoltage():
            return replace(
                s,
                pack_uv_alarm_mv=_mv(g.alarm_v),
                pack_uv_protect_mv=_mv(g.protect_v),
                pack_uv_release_mv=_mv(g.release_v),
                pack_uv_delay_s=g.delay_s,
            )
        case pp.ChargeOverCurrent():
            return replace(s, charge_oc_alarm_a=g.alarm_a, charge_oc_protect_a=g.protect_a, charge_oc_delay_s=g.delay_s)
        case pp.DischargeOverCurrent1():
            return replace(
                s, discharge_oc_alarm_a=g.alarm_a, discharge_oc_protect_a=g.protect_a, discharge_oc_delay_s=g.delay_s
            )
        case pp.DischargeOverCurrent2():
            return replace(s, discharge_oc2_protect_a=g.protect_a, discharge_oc2_delay_s=g.delay_s)
        case pp.ShortCircuit():
            return replace(s, short_circuit_delay_us=g.delay_us)
        case pp.Balancing():
            return replace(s, balance_start_mv=_mv(g.start_v), balance_delta_mv=g.delta_mv)
        case pp.Sleep():
            return replace(s, sleep_cell_mv=_mv(g.cell_v), sleep_delay_min=g.delay_min)
        case pp.FullChargeLowSoc():
            return replace(
                s,
                full_charge_mv=_mv(g.full_charge_v),
                full_charge_ma=round(g.full_charge_current_a * 1000),
                low_soc_pct=g.low_soc_pct,
            )
        case pp.ChargeDischargeOverTemperature():
            return replace(
                s,
                charge_ot_alarm_c=g.charge_alarm_c,
                charge_ot_protect_c=g.charge_protect_c,
                charge_ot_release_c=g.charge_release_c,
                discharge_ot_alarm_c=g.discharge_alarm_c,
                discharge_ot_protect_c=g.discharge_protect_c,
                discharge_ot_release_c=g.discharge_release_c,
            )
        case pp.ChargeDischargeUnderTemperature():
            return replace(
                s,
                charge_ut_alarm_c=g.charge_alarm_c,
                charge_ut_protect_c=g.charge_protect_c,
                charge_ut_release_c=g.charge_release_c,
                discharge_ut_alarm_c=g.discharge_alarm_c,
                discharge_ut_protect_c=g.discharge_protect_c,
                discharge_ut_release_c=g.discharge_release_c,
            )
        case pp.MosfetOverTemperature():
            return replace(s, mos_ot_alarm_c=g.alarm_c, mos_ot_protect_c=g.protect_c, mos_ot_release_c=g.release_c)
        case pp.EnvironmentTemperature():
            return replace(
                s,
                env_ut_alarm_c=g.under_alarm_c,
                env_ut_protect_c=g.under_protect_c,
                env_ut_release_c=g.under_release_c,
                env_ot_alarm_c=g.over_alarm_c,
                env_ot_protect_c=g.over_protect_c,
                env_ot_release_c=g.over_release_c,
            )
        case pp.LimiterStartCurrent():
            return replace(s, limiter_start_a=g.current_a)
        case pp.ProtocolSelection():
            return replace(
                s, can_protocol=g.can_protocol, rs485_protocol=g.rs485_protocol, protocol_type=g.selection_type
            )
    raise RequestRefusedError(Rtn.CID2_INVALID)


class ParameterTable:
    """PACE parameter groups (docs/protocol.md §1.9.12): reads report the BMS's settings with the library's encoders,
    writes are decoded, checked with the group's own validate() (RTN 09 on failure) and applied to the physics."""

    def knows(self, cid2: int) -> bool:
        return cid2 in pp.GROUP_BY_READ_CID2 or cid2 in pp.GROUP_BY_WRITE_CID2

    def handle(self, cid2: int, info: bytes, pack: PackModel) -> bytes:
        read = pp.GROUP_BY_READ_CID2.get(cid2)
        if read is not None:
            if info:
                raise RequestRefusedError(Rtn.FORMAT_ERROR)
            current = _settings_to_groups(pack.settings)[read]
            return current.encode_reply()
        group_type = pp.GROUP_BY_WRITE_CID2[cid2]
        try:
            group = group_type.decode(info)
            group.validate()
        except FrameError, pp.ParameterError:
            raise RequestRefusedError(Rtn.OPERATION_REFUSED) from None
        # The lead byte is whatever the BMS reports; a write carrying another one is not ours to accept.
        current = _settings_to_groups(pack.settings)[group_type]
        if getattr(group, "lead", None) != getattr(current, "lead", None):
            raise RequestRefusedError(Rtn.OPERATION_REFUSED)
        pack.apply_settings(_apply_group(pack.settings, group))
        return b""


# --- the 0x20 family -------------------------------------------------------------------------------------------


class _Family20Responder(Responder):
    """Shared rules of the VER 0x20 protocols: ADR error (RTN 90) for a pack not served here, RTN 06 for bad INFO."""

    ver = f20.VER_20
    cid1 = f20.CID1_LIFEPO4
    refuse_address_rtn = Rtn.ADR_ERROR
    refuse_data_rtn = Rtn.INVALID_DATA

    def selector(self, request: Frame) -> int:
        """The COMMAND byte; Pylon hub tools send two bytes (ADR, index), the first one selects (§1.7.2)."""
        if len(request.info) not in (1, 2):
            raise RequestRefusedError(Rtn.INVALID_DATA)
        return request.info[0]

    def single_pack(self, target: Target, command: int) -> PackModel:
        """Seplos/EG4 replies hold exactly one pack: the addressed one (relayed by the master on RS232)."""
        packs = self.selected_packs(target, command)
        if packs is None:
            raise RequestRefusedError(self.refuse_address_rtn)
        if len(packs) != 1:
            raise RequestRefusedError(Rtn.INVALID_DATA)  # no "all packs" record layout in this protocol
        return packs[0]


def _quantized(analog: PackAnalog, *, current_step: float, voltage_step: float, capacity_step: float) -> PackAnalog:
    """A PackAnalog with the values rounded to the wire units of a protocol."""

    def q(value: float, step: float) -> float:
        return round(round(value / step) * step, 6)

    return replace(
        analog,
        current_a=q(analog.current_a, current_step),
        voltage_v=q(analog.voltage_v, voltage_step),
        remaining_ah=q(analog.remaining_ah, capacity_step),
        full_ah=q(analog.full_ah, capacity_step),
    )


class PylonResponder(_Family20Responder):
    """Pylontech RS485/RS232 (§1.10.1): genuine units (mV, 100 mA, mAh; 3-byte capacities above 65 Ah)."""

    protocol = ProtocolName.PYLON

    def __init__(self, cluster: Cluster, link: LinkMode) -> None:
        super().__init__(cluster, link)
        self._handlers: dict[int, Callable[[Frame, Target], bytes | None]] = {
            f20.Cid2.ANALOG: self._analog,
            f20.Cid2.STATUS: self._status,
            f20.Cid2.PROTOCOL_VERSION: lambda request, target: b"",
            f20.Cid2.MANUFACTURER_INFO: self._manufacturer,
            f20.Cid2.SYSTEM_PARAMETERS: self._system_parameters,
            f20.Cid2.CHARGE_MANAGEMENT: self._charge_management,
            f20.Cid2.SERIAL_NUMBER: self._serial,
            f20.Cid2.SOFTWARE_VERSION: self._software_version,
            PYLON_PACK_COUNT: self._pack_count,
        }

    def respond(self, request: Frame) -> bytes | None:
        # "The BMS ignores VER in requests for CID2 0x4F" (§1.6): the reply's VER is the answer.
        if request.cid2 == f20.Cid2.PROTOCOL_VERSION and request.cid1 == self.cid1:
            request = replace(request, ver=self.ver)
        return super().respond(request)

    def handle(self, request: Frame, target: Target) -> bytes | None:
        handler = self._handlers.get(request.cid2)
        if handler is None:
            raise RequestRefusedError(Rtn.CID2_INVALID)
        return handler(request, target)

    def wire_analog(self, pack: PackModel, address: int) -> PackAnalog:
        return _quantized(pack.analog(address), current_step=0.1, voltage_step=0.001, capacity_step=0.001)

    def _analog(self, request: Frame, target: Target) -> bytes | None:
        command = self.selector(request)
        packs = self.selected_packs(target, command)
        if packs is None:
            return None
        first = self.master.address
        records = [self.wire_analog(p, first + i if command == ALL_PACKS else command) for i, p in enumerate(packs)]
        return f20.encode_pylon_analog_info(records, command)

    def _status(self, request: Frame, target: Target) -> bytes | None:
        command = self.selector(request)
        packs = self.selected_packs(target, command)
        if packs is None:
            return None
        return f20.encode_pylon_status_info([p.status() for p in packs], command)

    def _pack_count(self, request: Frame, target: Target) -> bytes:
        if self.link is LinkMode.RS232_MASTER and not target.is_master:
            raise RequestRefusedError(self.refuse_address_rtn)
        return bytes((len(self.cluster.packs) if target.is_master else 1,))

    def _manufacturer(self, request: Frame, target: Target) -> bytes:
        pack = self.only_master(target)
        return f20.encode_manufacturer_info(
            f20.ManufacturerInfo(device_name=pack.model[:10], software_version=(1, 0), manufacturer="PACE-SIM")
        )

    def _system_parameters(self, request: Frame, target: Target) -> bytes:
        s = self.only_master(target).settings
        return f20.encode_pylon_system_parameters(
            f20.PylonSystemParameters(
                cell_high_voltage_v=s.cell_ov_alarm_mv / 1000,
                cell_low_voltage_v=s.cell_uv_alarm_mv / 1000,
                cell_undervoltage_v=s.cell_uv_protect_mv / 1000,
                charge_high_temperature_c=s.charge_ot_alarm_c,
                charge_low_temperature_c=s.charge_ut_alarm_c,
                charge_current_limit_a=float(s.charge_oc_alarm_a),
                module_high_voltage_v=s.pack_ov_alarm_mv / 1000,
                module_low_voltage_v=s.pack_uv_alarm_mv / 1000,
                module_undervoltage_v=s.pack_uv_protect_mv / 1000,
                discharge_high_temperature_c=s.discharge_ot_alarm_c,
                discharge_low_temperature_c=s.discharge_ut_alarm_c,
                discharge_current_limit_a=-float(s.discharge_oc_alarm_a),
            )
        )

    def _addressed(self, request: Frame, target: Target) -> PackModel:
        """0x92/0x93/0x96 carry COMMAND = the module's address."""
        command = self.selector(request)
        pack = self.only_master(target)
        if command != pack.address:
            raise RequestRefusedError(self.refuse_address_rtn)
        return pack

    def _charge_management(self, request: Frame, target: Target) -> bytes:
        pack = self._addressed(request, target)
        s = pack.settings
        return f20.encode_pylon_charge_management(
            f20.PylonChargeManagement(
                address=pack.address,
                charge_voltage_limit_v=s.full_charge_mv / 1000,
                discharge_voltage_limit_v=s.pack_uv_alarm_mv / 1000,
                charge_current_limit_a=float(s.charge_oc_alarm_a),
                discharge_current_limit_a=-float(s.discharge_oc_alarm_a),
                charge_enabled=pack.charge_mos_on,
                discharge_enabled=pack.discharge_mos_on,
                force_charge_1=pack.soc_pct < s.low_soc_pct,
                force_charge_2=False,
                full_charge_request=False,
            )
        )

    def _serial(self, request: Frame, target: Target) -> bytes:
        pack = self._addressed(request, target)
        serial = pack.pack_serial.strip()[:16]
        return f20.encode_pylon_serial_number(f20.PylonSerialNumber(address=pack.address, serial=serial))

    def _software_version(self, request: Frame, target: Target) -> bytes:
        pack = self._addressed(request, target)
        return f20.encode_pylon_software_version(
            f20.PylonSoftwareVersion(address=pack.address, manufacturer_version=(1, 0), mainline_version=(1, 0, 0))
        )


#: Pylon RS232 V2.8: 0x90 returns the pack count (§1.10.1).
PYLON_PACK_COUNT = 0x90


class SeplosResponder(_Family20Responder):
    """Seplos V2 (§1.10.2): one pack per reply, 10 mV / 10 mA / 10 mAh, SOC and SOH in 0.1 %."""

    protocol = ProtocolName.SEPLOS

    def handle(self, request: Frame, target: Target) -> bytes | None:
        match request.cid2:
            case f20.Cid2.ANALOG:
                command = self.selector(request)
                return f20.encode_seplos_analog_info([self.wire_analog(self.single_pack(target, command))], command)
            case f20.Cid2.STATUS:
                command = self.selector(request)
                return f20.encode_seplos_status_info([self.single_pack(target, command).status()], command)
            case f20.Cid2.MANUFACTURER_INFO:
                pack = self.only_master(target)
                return f20.encode_manufacturer_info(
                    f20.ManufacturerInfo(
                        device_name=f"1101-SP{pack.spec.cells:02d}",
                        software_version=(2, 7),
                        manufacturer="CANProtocol:Sofar",
                    )
                )
        raise RequestRefusedError(Rtn.CID2_INVALID)

    def wire_analog(self, pack: PackModel) -> PackAnalog:
        analog = _quantized(pack.analog(), current_step=0.01, voltage_step=0.01, capacity_step=0.01)
        soc = round(100.0 * analog.remaining_ah / analog.full_ah, 1) if analog.full_ah else 0.0
        return replace(
            analog,
            soc_pct=soc,
            soh_pct=round(pack.soh_pct, 1) if pack.reachable else 0.0,
            marker=f20.SEPLOS_UD,
            extra={"port_voltage_v": analog.voltage_v},
            tail=bytes(8),  # 4 reserved words
        )


class Eg4Responder(_Family20Responder):
    """EG4 LifePower4 (§1.10.3): CID1 4A, requests without INFO (the ADR selects), 2-byte-year clock."""

    protocol = ProtocolName.EG4
    cid1 = f20.CID1_EG4

    def handle(self, request: Frame, target: Target) -> bytes | None:
        match request.cid2:
            case f20.Cid2.ANALOG | f20.Cid2.STATUS:
                if request.info:
                    raise RequestRefusedError(Rtn.INVALID_DATA)
                pack = self.only_master(target)
                if request.cid2 == f20.Cid2.ANALOG:
                    return f20.encode_eg4_analog_info([self.wire_analog(pack)], pack.address)
                return f20.encode_eg4_status_info([pack.status()], pack.address)
            case f20.Cid2.CLOCK_READ:
                return f20.encode_eg4_clock(self.only_master(target).clock(self.cluster.time_s))
            case f20.Cid2.CLOCK_WRITE:
                pack = self.only_master(target)
                try:
                    moment = f20.decode_eg4_clock(request.info)
                except FrameError:
                    raise RequestRefusedError(Rtn.INVALID_DATA) from None
                pack.set_clock(self.cluster.time_s, moment)
                return b""
            case f20.Cid2.MANUFACTURER_INFO:
                pack = self.only_master(target)
                return f20.encode_eg4_hardware_info(f20.Eg4HardwareInfo(text=f"QTHN {pack.model}"))
        raise RequestRefusedError(Rtn.CID2_INVALID)

    def wire_analog(self, pack: PackModel) -> PackAnalog:
        analog = _quantized(pack.analog(), current_step=0.01, voltage_step=0.01, capacity_step=0.01)
        temps = analog.temperatures_c
        # EG4 order: cell sensors, environment, MOSFET (the physics lists MOSFET before environment).
        ordered = (*temps[:-2], temps[-1], temps[-2]) if len(temps) >= 2 else temps
        counters = pack.bms_counters
        return replace(
            analog,
            temperatures_c=ordered,
            soc_pct=float(round(analog.soc_pct)),
            soh_pct=float(round(analog.soh_pct or 0.0)),
            extra={
                "cumulative_charge_ah": round(counters.charged_ah, 2),
                "cumulative_discharge_ah": round(counters.discharged_ah, 2),
                "cumulative_charge_kwh": round(counters.charged_wh / 1000, 3),
                "cumulative_discharge_kwh": round(counters.discharged_wh / 1000, 3),
            },
        )


def make_responder(
    protocol: ProtocolName, cluster: Cluster, link: LinkMode, status_extra_byte: bool = False
) -> Responder:
    """The responder of a protocol family."""
    if protocol is ProtocolName.PACE25:
        return PaceResponder(cluster, link, status_extra_byte=status_extra_byte)
    if protocol is ProtocolName.PYLON:
        return PylonResponder(cluster, link)
    if protocol is ProtocolName.SEPLOS:
        return SeplosResponder(cluster, link)
    return Eg4Responder(cluster, link)
