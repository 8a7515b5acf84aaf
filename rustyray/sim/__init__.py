"""Deterministic simulator for sans-I/O cores (virtual clock, loss, delay, partitions, crashes, stalls).

The node-driver interface is documented in ``rustyray.sim.driver``.
"""

from rustyray.sim.driver import SimNode
from rustyray.sim.network import SimConfig, SimStats, Simulation

__all__ = ["SimConfig", "SimNode", "SimStats", "Simulation"]
