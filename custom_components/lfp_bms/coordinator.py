"""The coordinator: one per config entry (one link), polling the whole cluster through the ClusterClient."""

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .bms.client import ClusterClient, LinkConfig
from .bms.energy import EnergyIntegrator, EnergyTotals
from .bms.frame import BmsError
from .bms.models import ClusterState, PackIdentity
from .bms.registry import make_driver
from .bms.transport import SerialLink
from .const import (
    CONF_DEVICE,
    CONF_INVERT_CURRENT,
    CONF_SCAN_INTERVAL,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    ENERGY_MAX_GAP_INTERVALS,
    LINK_DOWN_REPAIR_AFTER,
    SLOW_READ_INTERVAL,
)

_LOGGER = logging.getLogger(__name__)

#: Energy series key of the cluster as a whole; packs use their address.
CLUSTER = "cluster"

type LfpBmsConfigEntry = ConfigEntry[LfpBmsCoordinator]


@dataclass(frozen=True, slots=True, kw_only=True)
class BankData:
    """What every entity reads: the last cluster state plus the energy totals integrated so far."""

    cluster: ClusterState
    energy: Mapping[str | int, EnergyTotals] = field(default_factory=dict)


class LfpBmsCoordinator(DataUpdateCoordinator[BankData]):
    """Polls analog values and status of every pack each interval; identity rarely."""

    config_entry: LfpBmsConfigEntry

    def __init__(self, hass: HomeAssistant, entry: LfpBmsConfigEntry) -> None:
        interval = entry.options.get(CONF_SCAN_INTERVAL, DEFAULT_SCAN_INTERVAL)
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
        self.client = ClusterClient(
            self.link,
            make_driver(self.link_config.protocol, ver=self.link_config.ver, cid1=self.link_config.cid1),
            self.link_config,
        )
        self.invert_current = bool(entry.options.get(CONF_INVERT_CURRENT, False))
        self.identities: dict[int, PackIdentity] = {}
        self._identity_read_at = 0.0
        self._energy: dict[str | int, EnergyIntegrator] = {}
        self._max_gap_s = interval * ENERGY_MAX_GAP_INTERVALS
        self._link_down_since: float | None = None
        #: Device registry id of the cluster hub, set by async_setup_entry before platforms load.
        self.cluster_device_id: str | None = None

    def energy_integrator(self, key: str | int) -> EnergyIntegrator:
        """The integrator of one series (created on first use, so restored totals can be fed in early)."""
        if key not in self._energy:
            self._energy[key] = EnergyIntegrator(self._max_gap_s)
        return self._energy[key]

    async def _async_setup(self) -> None:
        """Open the link and read identities once; a dead link here means ConfigEntryNotReady."""
        try:
            await self.link.open()
        except BmsError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"error": str(err)},
            ) from err
        await self._read_identities()

    async def _read_identities(self) -> None:
        for address in self.link_config.addresses:
            if self.link_config.writable(address):
                try:
                    self.identities[address] = await self.client.read_identity(address)
                except BmsError as err:
                    _LOGGER.debug("identity of pack %s not read: %s", address, err)
        self._identity_read_at = time.monotonic()

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
        if now - self._identity_read_at > SLOW_READ_INTERVAL.total_seconds():
            await self._read_identities()
        return BankData(cluster=state, energy=self._integrate(state, now))

    def _integrate(self, state: ClusterState, now: float) -> dict[str | int, EnergyTotals]:
        sign = -1.0 if self.invert_current else 1.0
        for address, reading in state.packs.items():
            integrator = self.energy_integrator(address)
            if reading.online and reading.analog is not None:
                integrator.add(now, sign * reading.analog.power_w)
            else:
                integrator.break_series()
        if state.summary.packs_online:
            self.energy_integrator(CLUSTER).add(now, sign * state.summary.power_w)
        else:
            self.energy_integrator(CLUSTER).break_series()
        return {key: integrator.totals for key, integrator in self._energy.items()}

    def _link_down(self, now: float) -> None:
        for integrator in self._energy.values():
            integrator.break_series()
        if self._link_down_since is None:
            self._link_down_since = now
        elif now - self._link_down_since >= LINK_DOWN_REPAIR_AFTER.total_seconds():
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                f"link_down_{self.config_entry.entry_id}",
                is_fixable=False,
                severity=ir.IssueSeverity.ERROR,
                translation_key="link_down",
                translation_placeholders={"title": self.config_entry.title},
            )

    def _link_up(self) -> None:
        if self._link_down_since is not None:
            self._link_down_since = None
            ir.async_delete_issue(self.hass, DOMAIN, f"link_down_{self.config_entry.entry_id}")

    async def async_shutdown(self) -> None:
        """Close the link with the coordinator."""
        await super().async_shutdown()
        await self.link.close()
