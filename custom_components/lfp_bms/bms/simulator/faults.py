"""Fault injection for the simulated link: what can go wrong between a BMS and its host, seeded and scheduled.

Grammar of a fault SPEC (the `--faults` flag and `FaultPlan.parse`): comma-separated `name=value` items,
whitespace ignored, each name at most once except `offline`:

    spec        := item ("," item)*
    item        := PROBABILITY_FAULT "=" p          p in [0, 1]: chance per reply
                 | "late_ms" "=" ms                 delay of a late reply (default 1500 ms)
                 | "close_every" "=" seconds        drop the connection when a request arrives on a connection
                                                    open for >= seconds of simulated time (the request is lost)
                 | "offline" "=" ADDR "@" start ["+" duration]
                                                    pack ADDR leaves the link bus at simulated second `start` for
                                                    `duration` seconds (no duration: for good); repeatable
                 | "asleep" "=" seconds             the BMS sleeps after this many simulated seconds without
                                                    traffic (docs/protocol.md §6: 5 min = 300); the first request after
                                                    that (and the very first request of a run) is not answered,
                                                    it only wakes the BMS
    PROBABILITY_FAULT := "corrupt"      one character of the reply is changed (checksum no longer matches)
                       | "drop"         no reply at all
                       | "late"         the reply is sent after late_ms (usually after the host gave up)
                       | "truncate"     only the first part of the reply is sent (no EOI)
                       | "garbage"      random non-frame bytes are sent before the reply
                       | "wrong_addr"   a valid reply that carries another ADR
                       | "nonsense"     a checksum-valid analog (0x42) reply with one implausible value in one
                                        pack record (see Nonsense); PACE only, other replies are left alone

Example: `corrupt=0.01,drop=0.02,late=0.01,truncate=0.01,garbage=0.01,wrong_addr=0.01,close_every=300,
offline=3@60+30,asleep=300`. Probabilities are drawn from one RNG seeded with the simulator seed, in a fixed
order per reply, so a run is reproducible.
"""

import random
from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    """Per-reply faults, in the order they are drawn."""

    DROP = "drop"
    LATE = "late"
    TRUNCATE = "truncate"
    CORRUPT = "corrupt"
    GARBAGE = "garbage"
    WRONG_ADDR = "wrong_addr"
    NONSENSE = "nonsense"


class Nonsense(StrEnum):
    """Implausible values seen in checksum-valid replies on real links (issue 17), one per nonsense reply."""

    #: A sensor reading 0xFFFF: 6280.5 °C.
    TEMPERATURE = "temperature"
    #: SOC byte 0xFF: 255 % (without a SOC byte: remaining capacity 0xFFFF, 655.35 Ah).
    SOC = "soc"
    #: A cell reading 0xFFFF: 65.535 V.
    CELL = "cell"
    #: The pack voltage 0 V.
    PACK_ZERO = "pack_zero"
    #: 327.67 A at 65.535 V (both wire maxima): 21.5 kW on a 51.2 V pack.
    POWER = "power"
    #: -327.68 A (the s16 minimum) at the pack's own voltage: beyond any rating of a 100 Ah pack.
    CURRENT = "current"


class FaultSpecError(ValueError):
    """A fault SPEC does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class Outage:
    """A pack off the link bus from start_s for duration_s simulated seconds (None = for good)."""

    address: int
    start_s: float
    duration_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """The parsed SPEC."""

    probabilities: dict[FaultKind, float] = field(default_factory=dict)
    late_ms: float = 1500.0
    close_every_s: float | None = None
    outages: tuple[Outage, ...] = ()
    asleep_after_s: float | None = None

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        """Parse a SPEC (see the module docstring); empty or None means no faults. Raises FaultSpecError."""
        probabilities: dict[FaultKind, float] = {}
        late_ms = 1500.0
        close_every: float | None = None
        asleep: float | None = None
        outages: list[Outage] = []
        seen: set[str] = set()
        for raw_item in (spec or "").split(","):
            item = "".join(raw_item.split())
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep or not value:
                raise FaultSpecError(f"fault item {item!r} is not name=value")
            if name in seen and name != "offline":
                raise FaultSpecError(f"fault {name!r} given twice")
            seen.add(name)
            if name in FaultKind.__members__.values():
                p = _number(name, value)
                if not 0.0 <= p <= 1.0:
                    raise FaultSpecError(f"{name}={value}: a probability must be within 0..1")
                probabilities[FaultKind(name)] = p
            elif name == "late_ms":
                late_ms = _positive(name, value)
            elif name == "close_every":
                close_every = _positive(name, value)
            elif name == "asleep":
                asleep = _positive(name, value)
            elif name == "offline":
                outages.append(_outage(value))
            else:
                raise FaultSpecError(f"unknown fault {name!r}")
        return cls(
            probabilities=probabilities,
            late_ms=late_ms,
            close_every_s=close_every,
            outages=tuple(outages),
            asleep_after_s=asleep,
        )

    @property
    def empty(self) -> bool:
        return not (
            any(self.probabilities.values()) or self.close_every_s or self.outages or self.asleep_after_s is not None
        )


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FaultSpecError(f"{name}={value}: not a number") from None


def _positive(name: str, value: str) -> float:
    number = _number(name, value)
    if number <= 0:
        raise FaultSpecError(f"{name}={value}: must be > 0")
    return number


def _outage(value: str) -> Outage:
    address, at, when = value.partition("@")
    if not at:
        raise FaultSpecError(f"offline={value}: expected ADDR@START[+DURATION]")
    start, plus, duration = when.partition("+")
    try:
        adr = int(address, 0)
    except ValueError:
        raise FaultSpecError(f"offline={value}: bad address") from None
    if not 0 <= adr <= 0xFF:
        raise FaultSpecError(f"offline={value}: address out of range")
    start_s = _number("offline start", start)
    if start_s < 0:
        raise FaultSpecError(f"offline={value}: start must be >= 0")
    duration_s = _positive("offline duration", duration) if plus else None
    return Outage(adr, start_s, duration_s)


@dataclass(slots=True)
class FaultInjector:
    """Draws the per-reply faults of a plan from a seeded RNG and applies them to reply bytes."""

    plan: FaultPlan
    seed: int = 0
    rng: random.Random = field(init=False)
    #: How often each fault was injected (also counts closes, sleeps and outages by name).
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"faults:{self.seed}")  # noqa: S311 - a simulation

    def draw(self, *, nonsense: bool = False) -> FaultKind | None:
        """The fault (at most one) to apply to the next reply; one RNG draw per configured kind, fixed order.
        NONSENSE is only chosen where it applies (`nonsense`: an analog reply the responder can falsify)."""
        chosen: FaultKind | None = None
        for kind in FaultKind:
            p = self.plan.probabilities.get(kind, 0.0)
            if p <= 0:
                continue
            hit = self.rng.random() < p
            if hit and chosen is None and (nonsense or kind is not FaultKind.NONSENSE):
                chosen = kind
        if chosen is not None:
            self.count(chosen)
        return chosen

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def corrupt(self, frame: bytes) -> bytes:
        """Replace one hex character between SOI and EOI with a different hex character."""
        pos = self.rng.randrange(1, len(frame) - 1)
        old = frame[pos]
        choices = [c for c in b"0123456789ABCDEF" if c != old]
        return frame[:pos] + bytes((self.rng.choice(choices),)) + frame[pos + 1 :]

    def truncate(self, frame: bytes) -> bytes:
        """The frame cut somewhere before its EOI."""
        return frame[: self.rng.randrange(1, len(frame) - 1)]

    def nonsense(self) -> Nonsense:
        """Which implausible value the next nonsense reply carries (counted as `nonsense_<kind>`)."""
        kind = self.rng.choice(list(Nonsense))
        self.count(f"nonsense_{kind}")
        return kind

    def garbage(self) -> bytes:
        """Line noise: bytes that are neither SOI nor EOI."""
        alphabet = [b for b in range(256) if b not in (0x7E, 0x0D)]
        return bytes(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 12)))
