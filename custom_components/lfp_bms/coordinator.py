"""The coordinator: one per config entry (one link), polling the whole cluster through the ClusterClient."""

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .bms.client import ClusterClient, LinkConfig
from .bms.control import GROUPS, PaceControl
from .bms.driver import ProtocolName
from .bms.energy import EnergyIntegrator, EnergyTotals
from .bms.frame import BmsError
from .bms.modbus.control import PaceModbusControl
from .bms.models import ClusterState, Implausible, PackIdentity
from .bms.pace_params import ParameterGroup
from .bms.plausibility import max_power_w
from .bms.registry import make_driver
from .bms.transport import SerialLink
from .const import (
    CONF_ALLOW_CONTROL,
    CONF_DEVICE,
    CONF_INVERT_CURRENT,
    CONF_REFRESH_S,
    CONF_SCAN_INTERVAL,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    ENERGY_MAX_GAP_INTERVALS,
    IMPLAUSIBLE_REPAIR_READINGS,
    LINK_DOWN_REPAIR_AFTER,
    MIN_SCAN_INTERVAL,
    PACK_MISSING_REPAIR_POLLS,
    SLOW_READ_INTERVAL,
)

_LOGGER = logging.getLogger(__name__)

#: Energy series key of the cluster as a whole; packs use their address.
CLUSTER = "cluster"
#: Consecutive polls a record beyond the configured packs must show a pack before it is added (not on a glitch).
NEW_PACK_POLLS = 2
#: When each entry's link went down (monotonic seconds). Kept outside the coordinator because every setup retry
#: builds a new one: a link already down when Home Assistant starts must still raise `link_down` in time.
LINK_DOWN_SINCE: HassKey[dict[str, float]] = HassKey(f"{DOMAIN}_link_down_since")

type LfpBmsConfigEntry = ConfigEntry[LfpBmsCoordinator]


def cluster_model(config: LinkConfig) -> str:
    """Model of the cluster device in words: the BMS maker and the number of packs ("PACE BMS, 4 packs"). The device
    registry does not translate models; the pack devices carry the pack's own model."""
    packs = len(config.addresses)
    return f"{config.protocol.maker} BMS, {packs} pack{'' if packs == 1 else 's'}"


def minimum_interval(refresh_s: float) -> int:
    """Shortest poll interval the link sustains: one refresh plus a fifth of slack for retries."""
    return max(MIN_SCAN_INTERVAL, math.ceil(refresh_s * 1.2))


def link_down_issue_id(entry_id: str) -> str:
    """Repair issue: the link of this entry has been down for LINK_DOWN_REPAIR_AFTER."""
    return f"link_down_{entry_id}"


def link_down_since(hass: HomeAssistant) -> dict[str, float]:
    """Down-since time of every entry whose link is down, by entry id."""
    return hass.data.setdefault(LINK_DOWN_SINCE, {})


def implausible_issue_id(entry_id: str, address: int | None = None) -> str:
    """Repair issue: a pack (or, address None, a CAN battery) keeps reporting an implausible value."""
    return f"implausible_{entry_id}" if address is None else f"implausible_{entry_id}_{address}"


def implausible_issue(hass: HomeAssistant, issue_id: str, device: str, problem: Implausible, readings: int) -> None:
    """Raise (or update) the repair issue naming the device and the value; one translation key per quantity."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=f"implausible_{problem.quantity}",
        translation_placeholders={
            "device": device,
            "value": f"{problem.value:g} {problem.unit}",
            "low": f"{problem.low:g} {problem.unit}",
            "high": f"{problem.high:g} {problem.unit}",
            "readings": str(readings),
        },
    )


def pack_missing_issue_id(entry_id: str, address: int) -> str:
    """Repair issue: a pack found at setup has stopped answering."""
    return f"pack_missing_{entry_id}_{address}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BankData:
    """What every entity reads: the last cluster state plus the energy totals integrated so far."""

    cluster: ClusterState
    energy: Mapping[str | int, EnergyTotals] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The BMS clock (naive local time, as the BMS keeps it) and Home Assistant's time when it was read."""

    bms: datetime
    host: datetime

    @property
    def drift_s(self) -> float:
        """BMS clock minus Home Assistant's local time: positive = the BMS runs ahead."""
        return (self.bms - dt_util.as_local(self.host).replace(tzinfo=None)).total_seconds()


class LfpBmsCoordinator(DataUpdateCoordinator[BankData]):
    """Polls analog values and status of every pack each interval; identity, parameters and clock rarely, in a
    background task after a poll (those reads take seconds on a bus and must not stretch a poll)."""

    config_entry: LfpBmsConfigEntry

    def __init__(self, hass: HomeAssistant, entry: LfpBmsConfigEntry) -> None:
        # Never faster than the link can read every pack, whatever the options say.
        interval = max(
            entry.options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL),
            minimum_interval(float(entry.data.get(CONF_REFRESH_S, 0.0))),
        )
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=entry.title,
            update_interval=timedelta(seconds=interval),
            # BankData compares by value: entities are only told when something changed.
            always_update=False,
        )
        self.link_config = LinkConfig.from_dict(entry.data)
        self.link = SerialLink(entry.data[CONF_DEVICE], baudrate=self.link_config.baudrate)
        # The sign option is applied where the data enters, so every value derived from the current follows it.
        self.client = ClusterClient(
            self.link,
            make_driver(self.link_config.protocol, ver=self.link_config.ver, cid1=self.link_config.cid1),
            self.link_config,
            invert_current=bool(entry.options.get(CONF_INVERT_CURRENT, False)),
        )
        self.identities: dict[int, PackIdentity] = {}
        self._energy: dict[str | int, EnergyIntegrator] = {}
        self._max_gap_s = interval * ENERGY_MAX_GAP_INTERVALS
        self._link_seen_up = False
        #: Consecutive polls (with the link up) each configured pack has not answered.
        self._missed_polls: dict[int, int] = {}
        #: Consecutive polls each configured pack answered with an implausible record.
        self._implausible_polls: dict[int, int] = {}
        #: Consecutive polls each record beyond the configured packs has shown a pack (broadcast only).
        self._new_pack_polls: dict[int, int] = {}
        #: Device registry id of the cluster hub, set by async_setup_entry before platforms load.
        self.cluster_device_id: str | None = None
        #: Writes (switches, parameters, clock, shutdown) are offered only with this option on.
        self.control_allowed = bool(entry.options.get(CONF_ALLOW_CONTROL, False))
        #: Confirmed writes and the reads they need (PACE only); the read-only services use it with control off.
        self.control = PaceControl(self.client) if self.link_config.protocol is ProtocolName.PACE25 else None
        #: Parameter reads/writes of a PACE Modbus bus (its map has no switches, clock or history).
        self.modbus_control = (
            PaceModbusControl(self.client) if self.link_config.protocol is ProtocolName.PACE_MODBUS else None
        )
        #: Parameter groups and clock of each writable pack, read at setup and hourly (with control only).
        self.parameters: dict[int, dict[type[ParameterGroup], ParameterGroup]] = {}
        self.clocks: dict[int, ClockReading] = {}
        #: When identities (and, with control, settings) were last read; the hourly re-read is due after that.
        self._slow_read_at = 0.0
        self._slow_read_task: asyncio.Task[None] | None = None

    def energy_integrator(self, key: str | int) -> EnergyIntegrator:
        """The integrator of one series (created on first use, so restored totals can be fed in early)."""
        if key not in self._energy:
            self._energy[key] = EnergyIntegrator(self._max_gap_s)
        return self._energy[key]

    @property
    def energy_samples_rejected(self) -> int:
        """Power samples no series integrated because they were beyond what the battery can carry."""
        return sum(integrator.rejected for integrator in self._energy.values())

    async def _async_setup(self) -> None:
        """Open the link and read identities once; a dead link here means ConfigEntryNotReady."""
        try:
            await self.link.open()
        except BmsError as err:
            self._link_down(time.monotonic())
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err)},
            ) from err
        # Entities need the identities for their device info, so these are read before the first poll.
        await self._slow_reads()

    async def _slow_reads(self) -> None:
        """Identities, and with control the settings, of every writable pack."""
        self._slow_read_at = time.monotonic()
        await self._read_identities()
        if self.control_allowed:
            await self.async_read_settings()

    def _start_slow_reads(self, now: float) -> None:
        """Re-read identities and settings in the background when due. The task starts after this poll has been
        published (not eagerly) and takes the client's lock per exchange, so polls go on between its reads; it
        stamps its start time, so a second one is not started while it runs."""
        if now - self._slow_read_at <= SLOW_READ_INTERVAL.total_seconds():
            return
        self._slow_read_task = self.config_entry.async_create_background_task(
            self.hass,
            self._background_slow_reads(),
            f"{DOMAIN} slow reads {self.config_entry.title}",
            eager_start=False,
        )

    async def _background_slow_reads(self) -> None:
        await self._slow_reads()
        # Parameter and clock entities read the coordinator's dicts: tell them (the poll data is unchanged).
        self.async_update_listeners()

    async def async_read_settings(self) -> None:
        """Every parameter group and the clock of each writable pack; what a pack will not give is left out."""
        control = self.control or self.modbus_control
        if control is None:
            return
        group_types = GROUPS.values() if isinstance(control, PaceControl) else control.groups.values()
        for address in self.link_config.addresses:
            if not self.link_config.writable(address):
                continue
            groups = self.parameters.setdefault(address, {})
            for group_type in group_types:
                try:
                    # One exchange per lock hold: a poll waits for at most one read, not for the whole set.
                    async with self.client.lock:
                        groups[group_type] = await control.read_group(address, group_type)
                except BmsError as err:
                    _LOGGER.debug("pack %s: %s not read: %s", address, group_type.__name__, err)
            if isinstance(control, PaceControl):
                await self.async_read_clock(control, address)

    async def async_read_clock(self, control: PaceControl, address: int) -> None:
        """Read one pack's clock into `clocks` (kept as it was when the pack does not answer)."""
        try:
            async with self.client.lock:
                self.clocks[address] = ClockReading(await control.read_clock(address), dt_util.utcnow())
        except BmsError as err:
            _LOGGER.debug("pack %s: clock not read: %s", address, err)

    async def _read_identities(self) -> None:
        for address in self.link_config.addresses:
            if self.link_config.writable(address):
                try:
                    async with self.client.lock:
                        self.identities[address] = await self.client.read_identity(address)
                except BmsError as err:
                    _LOGGER.debug("identity of pack %s not read: %s", address, err)

    async def _async_update_data(self) -> BankData:
        now = time.monotonic()
        try:
            state = await self.client.read_all()
        except BmsError as err:
            self._link_down(now)
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="communication_error",
                translation_placeholders={"error": str(err) or type(err).__name__},
            ) from err
        self._link_up()
        state = self._adopt_new_packs(state)
        self._track_missing_packs(state)
        self._track_implausible_packs(state)
        self._start_slow_reads(now)
        return BankData(cluster=state, energy=self._integrate(state, now))

    def _integrate(self, state: ClusterState, now: float) -> dict[str | int, EnergyTotals]:
        """Add this poll's power of each pack and of the cluster. Each sample is bounded by what its packs can carry
        (plausibility.max_power_w: rated peak current × margin at the LFP charge limit of the cells); beyond it the
        sample is rejected. An implausible record adds nothing: its pack's series bridges it like a lost poll, and
        the cluster's power is that of the packs online, as when a pack does not answer."""
        cluster_limit = 0.0
        for address, reading in state.packs.items():
            integrator = self.energy_integrator(address)
            if reading.online and reading.analog is not None:
                limit = max_power_w(reading.analog)
                cluster_limit += limit
                self._add_sample(address, now, reading.analog.power_w, limit)
            elif reading.implausible is None:
                integrator.break_series()
        if state.summary.packs_online:
            self._add_sample(CLUSTER, now, state.summary.power_w, cluster_limit)
        else:
            self.energy_integrator(CLUSTER).break_series()
        return {key: integrator.totals for key, integrator in self._energy.items()}

    def _add_sample(self, key: str | int, now: float, power_w: float, limit_w: float) -> None:
        if not self.energy_integrator(key).add(now, power_w, limit_w):
            _LOGGER.debug(
                "energy %s: %s W is beyond the %.0f W the battery can carry, not integrated", key, power_w, limit_w
            )

    def _link_down(self, now: float) -> None:
        # The energy series are not broken here: one lost poll (a corrupted frame) is bridged by the next sample,
        # and a longer outage exceeds the integrators' max gap and is skipped there. Breaking on every failed
        # poll lost two intervals of energy per failure (-20 % at 10 % failed polls, scripts/soak).
        since = link_down_since(self.hass).setdefault(self.config_entry.entry_id, now)
        if now - since >= LINK_DOWN_REPAIR_AFTER.total_seconds():
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                link_down_issue_id(self.config_entry.entry_id),
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key="link_down",
                translation_placeholders={"title": self.config_entry.title},
            )

    def _link_up(self) -> None:
        # The first good poll also clears an issue left over from before a reload.
        was_down = link_down_since(self.hass).pop(self.config_entry.entry_id, None) is not None
        if was_down or not self._link_seen_up:
            self._link_seen_up = True
            ir.async_delete_issue(self.hass, DOMAIN, link_down_issue_id(self.config_entry.entry_id))

    def _adopt_new_packs(self, state: ClusterState) -> ClusterState:
        """A pack added to the parallel group shows up as an extra broadcast record. Once one has shown a pack for
        NEW_PACK_POLLS consecutive polls it joins the link config (stored in the entry: no reload, the entry has
        no update listener) and its reading moves into this poll's packs; the platforms' listeners add its
        entities when this poll is published. RELAY and BUS polls ask only the configured addresses: there a
        new pack needs a reconfigure (re-detection)."""
        self._new_pack_polls = {
            address: self._new_pack_polls.get(address, 0) + 1
            for address, reading in state.unexpected.items()
            if reading.online
        }
        confirmed = [address for address, polls in self._new_pack_polls.items() if polls >= NEW_PACK_POLLS]
        if not confirmed:
            return state
        # Records are matched to addresses by position: a silent record before the new pack's joins with it.
        last = max(confirmed)
        added = {address: reading for address, reading in state.unexpected.items() if address <= last}
        config = replace(self.link_config, addresses=(*self.link_config.addresses, *sorted(added)))
        self.link_config = self.client.config = config
        entry = self.config_entry
        self.hass.config_entries.async_update_entry(entry, data={**entry.data, **config.as_dict()})
        if self.cluster_device_id is not None:
            dr.async_get(self.hass).async_update_device(self.cluster_device_id, model=cluster_model(config))
        for address in added:
            self._new_pack_polls.pop(address, None)
        _LOGGER.info("%s: pack(s) %s joined the cluster", entry.title, ", ".join(str(a) for a in sorted(added)))
        return ClusterState(
            packs=dict(sorted({**state.packs, **added}.items())),
            unexpected={address: reading for address, reading in state.unexpected.items() if address > last},
        )

    def _track_missing_packs(self, state: ClusterState) -> None:
        """Raise `pack_missing` for a configured pack silent for PACK_MISSING_REPAIR_POLLS polls; drop it when the
        pack answers. Polls with the link down do not count (the link issue covers them)."""
        entry = self.config_entry
        expected = len(self.link_config.addresses)
        for address in self.link_config.addresses:
            reading = state.packs.get(address)
            # A pack that answered with an implausible record is not missing: `implausible_*` tells about it.
            if reading is not None and (reading.online or reading.implausible is not None):
                # None: the first poll since setup; an issue may be left over from before a reload.
                missed = self._missed_polls.get(address)
                if missed is None or missed >= PACK_MISSING_REPAIR_POLLS:
                    ir.async_delete_issue(self.hass, DOMAIN, pack_missing_issue_id(entry.entry_id, address))
                self._missed_polls[address] = 0
                continue
            missed = self._missed_polls.get(address, 0) + 1
            self._missed_polls[address] = missed
            if missed == PACK_MISSING_REPAIR_POLLS:
                ir.async_create_issue(
                    self.hass,
                    DOMAIN,
                    pack_missing_issue_id(entry.entry_id, address),
                    is_fixable=False,
                    severity=ir.IssueSeverity.WARNING,
                    translation_key="pack_missing",
                    translation_placeholders={
                        "title": entry.title,
                        "address": str(address),
                        "polls": str(missed),
                        "online": str(state.summary.packs_online),
                        "expected": str(expected),
                    },
                )

    def _track_implausible_packs(self, state: ClusterState) -> None:
        """Raise `implausible_<quantity>` for a pack whose records were implausible IMPLAUSIBLE_REPAIR_READINGS polls
        in a row (a one-off glitch stays a debug line); drop it when the pack reports plausible values."""
        entry = self.config_entry
        for address in self.link_config.addresses:
            reading = state.packs.get(address)
            if reading is None:
                continue
            issue_id = implausible_issue_id(entry.entry_id, address)
            if reading.implausible is not None:
                count = self._implausible_polls.get(address, 0) + 1
                self._implausible_polls[address] = count
                if count == IMPLAUSIBLE_REPAIR_READINGS:
                    implausible_issue(self.hass, issue_id, self._pack_device_name(address), reading.implausible, count)
            elif reading.online:
                # None: the first poll since setup; an issue may be left over from before a reload.
                count_before = self._implausible_polls.get(address)
                if count_before is None or count_before >= IMPLAUSIBLE_REPAIR_READINGS:
                    ir.async_delete_issue(self.hass, DOMAIN, issue_id)
                self._implausible_polls[address] = 0

    def _pack_device_name(self, address: int) -> str:
        """The pack's device name as Home Assistant shows it (translated, or the user's), with the entry title."""
        from .entity import pack_identifier  # here: entity.py imports this module

        device = dr.async_get(self.hass).async_get_device(identifiers={(DOMAIN, pack_identifier(self, address))})
        name = None if device is None else device.name_by_user or device.name
        return f"{name or address} ({self.config_entry.title})"

    async def async_shutdown(self) -> None:
        """Stop a running re-read, then close the link with the coordinator."""
        await super().async_shutdown()
        task = self._slow_read_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        await self.link.close()
