"""The generator API: a seeded, deterministic survey night, independent of the butler.

``Simulator(SimConfig(seed=...))`` knows the camera, the night's visits and each field's sky;
it renders any raw (visit, detector), any template patch and any detector's calibrations on
demand, each from its own random stream (``SeedSequence([seed, tag, ...])``), so products
do not depend on the order they are asked for. Writing files is in ``alertbutler.sim.files``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from astropy.wcs import WCS

from alertbutler.sim.calibs import DetectorCalibs, make_detector_calibs
from alertbutler.sim.camera import Camera
from alertbutler.sim.errors import SimError
from alertbutler.sim.night import NEXT_VISIT_LEAD_S, NightConfig, Visit, plan_night
from alertbutler.sim.render import (
    Mog,
    convolve_galaxies,
    galaxy_covariance,
    point_sources,
    psf_mog,
    render,
)
from alertbutler.sim.sky import NJY_ZERO, SKY_MAG, ZEROPOINT, FieldSky, SkyDensity, make_field_sky
from alertbutler.sim.templates import TemplatePatch, TractGeometry, make_tract
from alertbutler.sim.truth import difference_snr, empty_truth, psf_noise_factors, truth_table

_TAG_SKY, _TAG_CALIB, _TAG_NIGHT, _TAG_RAW, _TAG_TEMPLATE = 1, 2, 3, 4, 5
#: sub-exposure positions used to draw a mover's trail
_TRAIL_STEPS = 7
#: truth also lists objects this far off the detector, whose light reaches it
_TRUTH_MARGIN_PX = 12.0


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    seed: int = 1
    camera: Camera = field(default_factory=Camera)
    night: NightConfig = field(default_factory=NightConfig)
    density: SkyDensity = field(default_factory=SkyDensity)
    patch_size: int = 1024
    patch_margin: int = 48
    #: cosmic rays per million pixels in a 30 s exposure
    cosmic_rays_per_mpix: float = 25.0
    calib_validity_days: float = 30.0


@dataclass(frozen=True)
class RawExposure:
    """A raw: ADU pixels (uint16), the FITS header ingest needs, and its ground truth."""

    visit: Visit
    detector: int
    data: np.ndarray
    header: fits.Header
    truth: Table


class Simulator:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.camera = self.config.camera
        self.night = self.config.night
        self.visits: list[Visit] = plan_night(self.night, self._rng(_TAG_NIGHT), SKY_MAG)
        self._by_id = {v.visit: v for v in self.visits}
        self._sky: dict[int, FieldSky] = {}
        self.calibs = lru_cache(maxsize=2)(self._make_calibs)

    # --- random streams and lookups ---------------------------------------------------------
    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.config.seed, *keys]))

    def visit(self, visit: int | Visit) -> Visit:
        if isinstance(visit, Visit):
            return visit
        try:
            return self._by_id[int(visit)]
        except KeyError:
            raise SimError(f"visit {visit} is not part of this night") from None

    @property
    def fields(self) -> range:
        return range(self.night.n_fields)

    def field_sky(self, field_index: int) -> FieldSky:
        if field_index not in self._sky:
            ra, dec = self.night.field_center(field_index)
            self._sky[field_index] = make_field_sky(
                self._rng(_TAG_SKY, field_index), field_index, ra, dec,
                self._radius_px() * self.camera.pixel_scale / 3600.0, self.night.mid_mjd,
                self.config.density)
        return self._sky[field_index]

    def _radius_px(self) -> float:
        dither = 4 * self.night.dither_arcsec / self.camera.pixel_scale
        return self.camera.field_radius_px + dither + 2 * self.config.patch_margin

    # --- photometry ---
    def electrons_per_njy(self, visit: Visit) -> float:
        zp = ZEROPOINT[visit.band] - visit.transparency_mag
        return visit.exptime * 10 ** (0.4 * (zp - NJY_ZERO))

    def sky_electrons(self, visit: Visit) -> float:
        area = self.camera.pixel_scale**2
        return 10 ** (-0.4 * (visit.sky_mag - ZEROPOINT[visit.band])) * area * visit.exptime

    def template_noise_njy(self, band: str) -> float:
        """Per-pixel noise of the template: one nominal visit's sky noise over sqrt(depth)."""
        nominal = Visit(visit=0, seq_num=0, field=0, band=band, mjd_tai=0.0,
                        exptime=self.night.exptime, ra=0.0, dec=0.0, rotation_deg=0.0,
                        seeing=1.0, psf_e1=0.0, psf_e2=0.0, sky_mag=SKY_MAG[band],
                        transparency_mag=0.0, background_tilt=0.0)
        k = self.electrons_per_njy(nominal)
        sky_var = self.sky_electrons(nominal) + self.camera.read_noise**2
        return math.sqrt(sky_var / self.night.template_depth) / k

    # --- calibrations ---
    def _make_calibs(self, detector: int) -> DetectorCalibs:
        self.camera.check_detector(detector)
        start = self.night.start_mjd
        half = self.config.calib_validity_days / 2
        return make_detector_calibs(self.camera, detector, self.night.bands,
                                    self._rng(_TAG_CALIB, detector), start - half, start + half)

    # --- templates ---
    def tract(self, field_index: int) -> TractGeometry:
        ra, dec = self.night.field_center(field_index)
        return make_tract(field_index, ra, dec, self.camera.pixel_scale, self._radius_px(),
                          self.config.patch_size, self.config.patch_margin)

    def patches_for(self, visit: int | Visit, detector: int, margin_px: float = 64.0) -> list[int]:
        """Template patches a visit-detector's footprint (grown by ``margin_px``) overlaps."""
        v = self.visit(visit)
        corners = self.camera.detector_corners(detector, v.ra, v.dec, v.rotation_deg, margin_px)
        return self.tract(v.field).patches_covering(corners[:, 0], corners[:, 1])

    def needed_templates(self) -> list[tuple[int, str, int]]:
        """(field, band, patch) of every template patch some visit-detector of the night needs."""
        needed = {(v.field, v.band, p) for v in self.visits for d in self.camera.detectors
                  for p in self.patches_for(v, d)}
        return sorted(needed)

    def template(self, field_index: int, band: str, patch: int) -> TemplatePatch:
        tract = self.tract(field_index)
        wcs = tract.patch_wcs(patch)
        shape = tract.patch_shape
        sky = self.field_sky(field_index)
        psf = psf_mog(self.night.template_seeing / self.camera.pixel_scale)
        sigma = self.template_noise_njy(band)
        image = np.zeros(shape)
        self._render_static(image, sky, band, wcs, psf, 1.0, sigma)
        _, mean = sky.variable_flux(band, 0.0)
        self._render_points(image, wcs, sky.variables["ra"], sky.variables["dec"], mean, psf,
                            sigma)
        nominal_k = self.electrons_per_njy(
            Visit(visit=0, seq_num=0, field=0, band=band, mjd_tai=0.0, exptime=self.night.exptime,
                  ra=0, dec=0, rotation_deg=0, seeing=1, psf_e1=0, psf_e2=0, sky_mag=0,
                  transparency_mag=0.0, background_tilt=0))
        variance = sigma**2 + np.maximum(image, 0.0) / (nominal_k * self.night.template_depth)
        rng = self._rng(_TAG_TEMPLATE, field_index, "ugrizy".index(band), patch)
        image += rng.standard_normal(shape) * np.sqrt(variance)
        return TemplatePatch(field_index, band, patch, image.astype(np.float32),
                             variance.astype(np.float32), wcs, self.night.template_seeing)

    # --- rendering helpers ------------------------------------------------------------------------
    def _pixels(self, wcs: WCS, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int],
                margin: float = 150.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(ra) == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0, bool)
        x, y = wcs.all_world2pix(ra, dec, 0)
        ny, nx = shape
        keep = (x > -margin) & (x < nx + margin) & (y > -margin) & (y < ny + margin)
        return x, y, keep

    def _render_points(self, image: np.ndarray, wcs: WCS, ra: np.ndarray, dec: np.ndarray,
                       flux: np.ndarray, psf: Mog, noise: float) -> None:
        x, y, keep = self._pixels(wcs, ra, dec, image.shape)
        w, c = point_sources(int(keep.sum()), psf)
        render(image.shape, x[keep], y[keep], flux[keep], w, c, noise, out=image)

    def _render_static(self, image: np.ndarray, sky: FieldSky, band: str, wcs: WCS, psf: Mog,
                       scale: float, noise: float) -> None:
        stars = sky.stars
        self._render_points(image, wcs, stars["ra"], stars["dec"],
                            sky.static_flux("stars", band) * scale, psf, noise)
        gal = sky.galaxies
        x, y, keep = self._pixels(wcs, gal["ra"], gal["dec"], image.shape)
        if keep.any():
            cov_sky = galaxy_covariance(gal["r_eff"][keep] / self.camera.pixel_scale,
                                        gal["q"][keep], gal["theta"][keep])
            # sky (east, north) axes to pixel axes through the local CD matrix
            cd = wcs.wcs.cd if wcs.wcs.has_cd() else wcs.pixel_scale_matrix
            a = cd / (self.camera.pixel_scale / 3600.0)
            ainv = np.linalg.inv(a)
            cov_pix = ainv[None] @ cov_sky @ ainv.T[None]
            w, c = convolve_galaxies(cov_pix, psf)
            render(image.shape, x[keep], y[keep],
                   sky.static_flux("galaxies", band)[keep] * scale, w, c, noise, out=image)

    # --- raws ---
    def raw(self, visit: int | Visit, detector: int) -> RawExposure:
        v = self.visit(visit)
        cam = self.camera
        cam.check_detector(detector)
        from alertbutler.sim.files import raw_header  # local: files imports this module

        wcs = cam.detector_wcs(detector, v.ra, v.dec, v.rotation_deg)
        sky = self.field_sky(v.field)
        cal = self.calibs(detector)
        rng = self._rng(_TAG_RAW, v.visit, detector)
        k = self.electrons_per_njy(v)
        psf = psf_mog(v.seeing / cam.pixel_scale, v.psf_e1, v.psf_e2)
        shape = (cam.ny, cam.nx)
        sky_e = self.sky_electrons(v)
        noise = math.sqrt(sky_e)
        image = np.zeros(shape)
        self._render_static(image, sky, v.band, wcs, psf, k, noise)
        t = v.mid_mjd
        var_now, var_mean = sky.variable_flux(v.band, t)
        self._render_points(image, wcs, sky.variables["ra"], sky.variables["dec"], var_now * k,
                            psf, noise)
        tr_flux = sky.transient_flux(v.band, t)
        on = tr_flux > 0
        self._render_points(image, wcs, sky.transients["ra"][on], sky.transients["dec"][on],
                            tr_flux[on] * k, psf, noise)
        mv_flux = sky.mover_flux(v.band)
        steps = (np.arange(_TRAIL_STEPS) + 0.5) / _TRAIL_STEPS * v.exptime / 86400.0
        for dt in steps:
            mra, mdec = sky.mover_position(v.mjd_tai + dt)
            self._render_points(image, wcs, mra, mdec, mv_flux * k / _TRAIL_STEPS, psf, noise)

        # sky with a gradient across the focal plane, then the detector's response
        x0, y0 = cam.detector_origin(detector)
        fx = (np.arange(cam.nx) + x0) / cam.field_radius_px
        fy = (np.arange(cam.ny) + y0) / cam.field_radius_px
        image += sky_e * (1.0 + v.background_tilt * (fx[None, :] + 0.5 * fy[:, None]))
        flat = cal.flats[v.band]
        gain = cam.gain(detector)
        expected = image * flat + cal.dark * (gain * v.exptime)
        _apply_defects(expected, cal)
        _bleed(expected, cam.full_well)
        electrons = rng.poisson(expected).astype(np.float64)
        _add_cosmic_rays(electrons, rng, self.config.cosmic_rays_per_mpix * v.exptime / 30.0)
        np.minimum(electrons, cam.full_well, out=electrons)
        adu = electrons / gain + cal.bias + rng.normal(0.0, cam.read_noise / gain, shape)
        data = np.clip(np.rint(adu), 0, cam.adc_max).astype(np.uint16)

        truth = self._truth(v, detector, wcs, sky, k, sky_e, psf, flat, cal, gain,
                            (var_now, var_mean), tr_flux)
        return RawExposure(v, detector, data, raw_header(cam, v, detector, wcs), truth)

    def _truth(self, v: Visit, detector: int, wcs: WCS, sky: FieldSky, k: float, sky_e: float,
               psf: Mog, flat: np.ndarray, cal: DetectorCalibs, gain: float,
               variables: tuple[np.ndarray, np.ndarray], tr_flux: np.ndarray) -> Table:
        cam = self.camera
        stamp = render((41, 41), np.array([20.0]), np.array([20.0]), np.array([1.0]),
                       *point_sources(1, psf), noise=1e-6)
        n_eff, f3 = psf_noise_factors(stamp)
        tvar_e = (self.template_noise_njy(v.band) * k) ** 2
        now, mean = variables
        mra, mdec = sky.mover_position(v.mid_mjd)
        mv = sky.movers
        speed = np.hypot(mv["rate_ra"], mv["rate_dec"]) * 3600.0 / cam.pixel_scale
        on = tr_flux > 0
        groups = [
            ("variable", sky.variables["id"], sky.variables["ra"], sky.variables["dec"], now,
             mean, np.zeros(len(now))),
            ("transient", sky.transients["id"][on], sky.transients["ra"][on],
             sky.transients["dec"][on], tr_flux[on], np.zeros(int(on.sum())),
             np.zeros(int(on.sum()))),
            ("mover", mv["id"], mra, mdec, sky.mover_flux(v.band), np.zeros(len(mra)),
             speed * v.exptime / 86400.0),
        ]
        tables = []
        for kind, ids, ra, dec, flux, tflux, trail in groups:
            if len(ra) == 0:
                continue
            x, y = wcs.all_world2pix(ra, dec, 0)
            # objects just off the detector still put light on it: listed, not "on_detector"
            m = _TRUTH_MARGIN_PX
            inside = (x >= -m) & (x <= cam.nx - 1 + m) & (y >= -m) & (y <= cam.ny - 1 + m)
            if not inside.any():
                continue
            xi = np.clip(np.rint(x[inside]).astype(int), 0, cam.nx - 1)
            yi = np.clip(np.rint(y[inside]).astype(int), 0, cam.ny - 1)
            f = flat[yi, xi]
            dark_e = cal.dark[yi, xi] * gain * v.exptime
            bg_var = (sky_e * f + dark_e + cam.read_noise**2) / f**2
            diff = (flux - tflux)[inside]
            snr = difference_snr(diff * k, flux[inside] * k, bg_var, tvar_e, n_eff, f3)
            tables.append(truth_table({
                "visit": v.visit, "detector": detector, "kind": kind, "object_id": ids[inside],
                "ra": ra[inside], "dec": dec[inside], "x": x[inside], "y": y[inside],
                "flux_njy": flux[inside], "template_flux_njy": tflux[inside],
                "diff_flux_njy": diff, "diff_snr": snr, "trail_px": trail[inside],
                "on_detector": ((x[inside] >= -0.5) & (x[inside] < cam.nx - 0.5)
                                & (y[inside] >= -0.5) & (y[inside] < cam.ny - 0.5)),
            }))
        return vstack(tables) if tables else empty_truth()

    def truth(self, visit: int | Visit, detector: int) -> Table:
        return self.raw(visit, detector).truth

    # --- events ---
    def next_visit_events(self) -> list[dict]:
        """One nextVisit-like event per visit, emitted NEXT_VISIT_LEAD_S before its start."""
        events = []
        for v in self.visits:
            events.append({
                "instrument": self.camera.name,
                "groupId": v.group_id,
                "visit": v.visit,
                "day_obs": self.night.day_obs_int,
                "seq_num": v.seq_num,
                "band": v.band,
                "filters": v.band,
                "coordinateSystem": "ICRS",
                "position": [v.ra, v.dec],
                "rotationSystem": "SKY",
                "cameraAngle": v.rotation_deg,
                "startTime": v.mjd_tai,
                "duration": v.exptime,
                "nimages": 1,
                "survey": "SIMSURVEY",
                "detectors": list(self.camera.detectors),
                "emit_mjd_tai": v.mjd_tai - NEXT_VISIT_LEAD_S / 86400.0,
            })
        return events


def _apply_defects(expected: np.ndarray, cal: DetectorCalibs) -> None:
    """Dead columns lose their charge, hot columns gain some, isolated defects run hot."""
    for c in cal.dead_columns:
        rows = cal.defects[:, c]
        expected[rows, c] *= 0.02
    for c in cal.hot_columns:
        rows = cal.defects[:, c]
        expected[rows, c] += 3000.0
    other = cal.defects.copy()
    other[:, list(cal.dead_columns + cal.hot_columns)] = False
    expected[other] += 20_000.0


def _bleed(expected: np.ndarray, full_well: float) -> None:
    """Charge above full well spills up and down its column, as in a CCD's bleed trail."""
    over = expected > full_well
    if not over.any():
        return
    for col in np.unique(np.nonzero(over)[1]):
        column = expected[:, col]
        excess = float(np.sum(np.maximum(column - full_well, 0.0)))
        rows = np.nonzero(column > full_well)[0]
        column[rows] = full_well
        lo, hi = int(rows.min()), int(rows.max())
        half = excess / 2.0
        for direction, start in ((-1, lo - 1), (1, hi + 1)):
            left, r = half, start
            while left > 0 and 0 <= r < len(column):
                room = full_well - column[r]
                take = min(room, left) if room > 0 else 0.0
                column[r] += take
                left -= take
                r += direction


def _add_cosmic_rays(electrons: np.ndarray, rng: np.random.Generator, per_mpix: float) -> None:
    """Straight tracks of a few pixels carrying thousands of electrons, not PSF-shaped."""
    ny, nx = electrons.shape
    n = int(rng.poisson(per_mpix * nx * ny / 1e6))
    if n == 0:
        return
    length = rng.exponential(4.0, n) + 0.5
    angle = rng.uniform(0, np.pi, n)
    x0 = rng.uniform(0, nx, n)
    y0 = rng.uniform(0, ny, n)
    deposit = rng.uniform(800.0, 6000.0, n)
    steps = np.ceil(length * 2).astype(int) + 1
    track = np.repeat(np.arange(n), steps)
    t = np.concatenate([np.linspace(0, length[i], steps[i]) for i in range(n)])
    px = np.rint(x0[track] + t * np.cos(angle[track])).astype(np.int64)
    py = np.rint(y0[track] + t * np.sin(angle[track])).astype(np.int64)
    ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
    key = np.unique(track[ok] * (nx * ny) + py[ok] * nx + px[ok])
    which, pix = np.divmod(key, nx * ny)
    np.add.at(electrons.reshape(-1), pix, deposit[which])
