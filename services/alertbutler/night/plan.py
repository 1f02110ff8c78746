"""Which simulated night to run: the one owner of a simulated night's shape and schedule.

``alertbutler run`` (:class:`~alertbutler.night.main_job.MainJobOptions`) and ``alertbutler
up --night`` (:class:`~alertbutler.deploy.feed.NightPlan`) each add their own options to
:class:`SimulatedNight`, so the two verbs' default night is the same night by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alertbutler.sim import Simulator


@dataclass(frozen=True, kw_only=True)
class SimulatedNight:
    """A simulated night: its seed, size, camera and schedule."""

    seed: int = 1
    n_visits: int = 6
    n_detectors: int = 4
    detector_size: int = 2048
    #: multiplies the density of static stars (small test detectors need more PSF stars)
    star_density_scale: float = 1.0
    #: seconds between visits (a real night: ~37 s at Rubin, 15 min per field here) and
    #: between a nextVisit event and its raws (Rubin: >= 20 s), compressed to fit 5 minutes
    cadence_s: float = 20.0
    lead_s: float = 4.0

    def simulator(self) -> Simulator:
        """The simulator rendering this night (the sim is imported only when asked for)."""
        from alertbutler.sim import Camera, NightConfig, SimConfig, Simulator, SkyDensity

        camera = Camera(n_detectors=self.n_detectors, nx=self.detector_size,
                        ny=self.detector_size)
        density = SkyDensity(stars=SkyDensity().stars * self.star_density_scale)
        return Simulator(SimConfig(seed=self.seed, camera=camera, density=density,
                                   night=NightConfig(n_visits=self.n_visits)))

    @property
    def camera_args(self) -> tuple[str, ...]:
        """Worker and fan-out options naming this night's camera geometry."""
        return ("--detectors", str(self.n_detectors), "--detector-size", str(self.detector_size))
