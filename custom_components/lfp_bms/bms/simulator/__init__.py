"""A simulated LiFePO4 battery cluster that speaks the library's protocols byte for byte.

sim = Simulator(SimulatorConfig(packs=4, speed=0, paced=False))
await sim.start()
sim.url            # socket://127.0.0.1:PORT, open it with transport.SerialLink
sim.advance(3600)  # an hour of physics, at once
sim.cluster.charged_wh, sim.sent  # ground truth and the log of every valid reply
await sim.stop()
"""

from .faults import FaultInjector, FaultKind, FaultPlan, FaultSpecError, Nonsense, Outage
from .physics import (
    Cluster,
    ConstantProfile,
    PackModel,
    PackSpec,
    PhysicsConfig,
    Profile,
    ProtectionSettings,
    ScriptedProfile,
    SineDayProfile,
)
from .responders import LinkMode, Responder, make_responder
from .server import SentReply, Simulator, SimulatorConfig, SimulatorStats

__all__ = [
    "Cluster",
    "ConstantProfile",
    "FaultInjector",
    "FaultKind",
    "FaultPlan",
    "FaultSpecError",
    "LinkMode",
    "Nonsense",
    "Outage",
    "PackModel",
    "PackSpec",
    "PhysicsConfig",
    "Profile",
    "ProtectionSettings",
    "Responder",
    "ScriptedProfile",
    "SentReply",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "SineDayProfile",
    "make_responder",
]
