"""The weblog's figures (issue 13) against independent truth: synthetic FITS images with a known
WCS and known sources, analytic line integrals, antenna positions built from the WGS84 formulas,
and, on alma_sim, the simulation's truth and CASA's own antenna layout."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from matplotlib import colormaps
from matplotlib.image import imread

from almarules.engine.facts.model import Antenna, Dataset, FieldFacts, Scan
from almarules.engine.io import WriteError
from almarules.engine.pipeline.weblog import figures
from almarules.engine.pipeline.weblog.figures import (array_plot, image_thumbnail, moment0, peak_spectrum,
                                                      scans_plot)

C_KMS = 299792.458
CELL = 0.1  # arcsec
BG = np.array([0xD0, 0xD0, 0xD0]) / 255.0  # figures_image.BACKGROUND


def _header(nx: int, ny: int, nchan: int, *, f0: float = 230e9, df: float = 1e6, crpix3: float = 1.0,
            bunit: str = "Jy/beam", beam: tuple[float, float, float] | None = (0.6, 0.5, 30.0),
            restfrq: float | None = None, ctype3: str = "FREQ") -> fits.Header:
    """A 4-D (RA, Dec, spectral, Stokes) header like the pipeline's: phase centre at pixel
    (nx // 2, ny // 2) (0-based), RA increasing to the left, beam in arcsec."""
    h = fits.Header()
    axes = [("RA---SIN", 240.0, nx // 2 + 1, -CELL / 3600, "deg"), ("DEC--SIN", -30.0, ny // 2 + 1, CELL / 3600, "deg"),
            (ctype3, f0, crpix3, df, "Hz" if ctype3 == "FREQ" else "m/s"), ("STOKES", 1.0, 1.0, 1.0, "")]
    for i, (ctype, crval, crpix, cdelt, cunit) in enumerate(axes, start=1):
        h[f"CTYPE{i}"], h[f"CRVAL{i}"], h[f"CRPIX{i}"], h[f"CDELT{i}"], h[f"CUNIT{i}"] = ctype, crval, crpix, cdelt, cunit
    h["RADESYS"], h["SPECSYS"], h["BUNIT"], h["OBJECT"] = "ICRS", "LSRK", bunit, "SYNTH"
    if beam is not None:
        h["BMAJ"], h["BMIN"], h["BPA"] = beam[0] / 3600, beam[1] / 3600, beam[2]
    if restfrq is not None:
        h["RESTFRQ"] = restfrq
    return h


def _write(path: Path, cube: np.ndarray, header: fits.Header, extra: list | None = None) -> Path:
    """Write cube (nchan, ny, nx) as (1, nchan, ny, nx) float32."""
    fits.HDUList([fits.PrimaryHDU(cube[np.newaxis].astype(np.float32), header), *(extra or [])]).writeto(path)
    return path


def _gauss(ny: int, nx: int, x0: float, y0: float, sigma: float) -> np.ndarray:
    y, x = np.mgrid[0:ny, 0:nx]
    return np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))


def _png(path: Path) -> np.ndarray:
    img = imread(path)
    assert img.ndim == 3
    return img[..., :3]


def _at(info, img: np.ndarray, x: float, y: float, nx: int, ny: int) -> np.ndarray:
    """The PNG colour at image pixel (x, y) (0-based, origin lower left), via the returned axes box."""
    left, top, right, bottom = info.axes_px
    col = left + (x + 0.5) / nx * (right - left)
    row = bottom - (y + 0.5) / ny * (bottom - top)
    return img[int(row), int(col)]


# ---------------------------------------------------------------- thumbnails


@pytest.fixture
def gaussian_image(tmp_path):
    """512 x 512 image: noise rms 0.01, a 5 Jy/beam Gaussian (sigma 10 px) at (x=380, y=120), the top
    rows y >= 440 blank (NaN)."""
    rng = np.random.default_rng(13)
    plane = rng.normal(0.0, 0.01, (512, 512)) + 5.0 * _gauss(512, 512, 380, 120, 10.0)
    plane[440:, :] = np.nan
    return _write(tmp_path / "g.image.fits", plane[np.newaxis], _header(512, 512, 1)), plane


def test_thumbnail_places_the_source_where_it_is_and_notes_the_noise(gaussian_image, tmp_path):
    path, plane = gaussian_image
    info = image_thumbnail(path, tmp_path / "g.png", "image")
    img = _png(info.path)
    assert img.shape[:2] == (320, 320) and (info.width_px, info.height_px) == (320, 320)
    assert info.stretch == "asinh" and info.unit == "Jy/beam"
    assert info.vmax == pytest.approx(np.nanmax(plane), rel=1e-6)  # float32 on disk
    assert info.rms == pytest.approx(0.01, rel=0.05)  # the injected noise
    top = np.array(colormaps["inferno"](1.0)[:3])
    assert np.abs(_at(info, img, 380, 120, 512, 512) - top).max() < 0.1  # the source, not mirrored
    assert _at(info, img, 512 - 380, 120, 512, 512).sum() < 1.2  # its mirror image is dark noise
    assert _at(info, img, 512 - 380, 512 - 120, 512, 512).sum() < 1.2
    assert np.abs(_at(info, img, 256, 480, 512, 512) - BG).max() < 0.02  # blank pixels: background
    left, top_, right, bottom = (int(v) for v in info.axes_px)
    assert img[top_:bottom, left:right].std() > 0.05  # not blank
    assert "asinh stretch" in info.caption and f"rms {info.rms:.3g} Jy/beam" in info.caption


def test_thumbnail_draws_the_beam_from_the_header(gaussian_image, tmp_path):
    info = image_thumbnail(gaussian_image[0], tmp_path / "g.png", "pbcor")
    assert info.beam_px == pytest.approx((0.6 / CELL, 0.5 / CELL, 30.0), rel=1e-9)
    assert "Beam 0.6\u2033 \u00d7 0.5\u2033, PA 30\u00b0" in info.caption


def test_thumbnail_is_fast(gaussian_image, tmp_path):
    image_thumbnail(gaussian_image[0], tmp_path / "warm.png", "image")  # imports, font cache
    t = time.perf_counter()
    for i in range(5):
        image_thumbnail(gaussian_image[0], tmp_path / f"t{i}.png", "image")
    per = (time.perf_counter() - t) / 5
    assert per < 1.0, f"{per:.2f} s per 320 px thumbnail of a 512^2 image (target 0.3 s, measured ~0.15 s)"


def test_beam_position_angle_is_east_of_north(tmp_path):
    """A 20 x 4 px beam at PA 45 deg: its major axis points north-east, which is up and to the LEFT
    (RA increases to the left); north-west (up-right) of its centre is outside it."""
    plane = np.random.default_rng(2).normal(0, 1e-3, (64, 64))
    plane[50, 50] = 1.0  # a bright pixel far from the beam: the noise is dark
    path = _write(tmp_path / "b.fits", plane[np.newaxis], _header(64, 64, 1, beam=(2.0, 0.4, 45.0)))
    info = image_thumbnail(path, tmp_path / "b.png", "image")
    img = _png(info.path)
    c = 0.04 * 64 + 10 - 0.5  # the ellipse's centre (pixels) in the lower-left corner
    r = 6 / math.sqrt(2)
    assert _at(info, img, c - r, c + r, 64, 64).min() > 0.8  # north-east: white beam
    assert _at(info, img, c + r, c + r, 64, 64).max() < 0.5  # north-west: dark noise


def test_planes_of_2d_and_axis_swapped_files(tmp_path):
    """A 2-D image without spectral axis; a cube stored as (Dec, RA, FREQ): the plane keeps RA on x."""
    h = fits.Header()
    for i, (ctype, crval, cdelt) in enumerate([("DEC--SIN", -30.0, 1e-4), ("RA---SIN", 240.0, -1e-4),
                                               ("FREQ", 230e9, 1e6)], start=1):
        h[f"CTYPE{i}"], h[f"CRVAL{i}"], h[f"CRPIX{i}"], h[f"CDELT{i}"] = ctype, crval, 1.0, cdelt
    cube = np.zeros((4, 10, 8))  # numpy (FREQ, RA, Dec)
    cube[3, 7, 2] = 1.0  # RA pixel 7, Dec pixel 2
    fits.writeto(tmp_path / "swap.fits", cube, h)
    info = peak_spectrum(tmp_path / "swap.fits", tmp_path / "swap.png")
    assert (info.peak_pixel, info.peak_channel) == ((7, 2), 3)
    thumb = image_thumbnail(tmp_path / "swap.fits", tmp_path / "swap_t.png", "image", channel=3)
    assert thumb.vmax == 1.0
    flat = fits.Header({"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CDELT1": -1e-4, "CDELT2": 1e-4})
    fits.writeto(tmp_path / "flat.fits", np.eye(8), flat)
    info = image_thumbnail(tmp_path / "flat.fits", tmp_path / "flat.png", "image")
    assert (info.channel, info.nchan, info.vmax) == (None, 1, 1.0) and "single plane" in info.caption


@pytest.mark.parametrize(("kind", "stretch", "vmin", "vmax"), [
    ("psf", "linear", -0.2, 1.0), ("pb", "linear", 0.0, 1.0), ("mask", "binary", 0.0, 1.0)])
def test_fixed_stretches(tmp_path, kind, stretch, vmin, vmax):
    plane = _gauss(64, 64, 32, 32, 8.0)
    if kind == "mask":
        plane = (plane > 0.5).astype(float)
    path = _write(tmp_path / f"x.{kind}.fits", plane[np.newaxis], _header(64, 64, 1, bunit="", beam=None))
    info = image_thumbnail(path, tmp_path / "x.png", kind, size_px=200, pblimit=0.2)
    assert (info.stretch, info.vmin, info.vmax) == (stretch, vmin, vmax)
    assert _png(info.path).shape[:2] == (200, 200)
    assert info.beam_px is None
    assert _png(info.path).std() > 0.05


def test_residual_is_symmetric_and_model_log(tmp_path):
    rng = np.random.default_rng(1)
    res = rng.normal(0.0, 2e-3, (100, 100))
    info = image_thumbnail(_write(tmp_path / "r.fits", res[np.newaxis], _header(100, 100, 1)), tmp_path / "r.png",
                           "residual")
    assert info.stretch == "linear" and info.vmin == -info.vmax
    assert info.unit == "mJy/beam" and info.vmax == pytest.approx(2 * 2.576, rel=0.15)  # 99.5% of N(0, 2)
    model = np.zeros((100, 100))
    model[50, 40], model[20, 70] = 0.03, 0.004
    info = image_thumbnail(_write(tmp_path / "m.fits", model[np.newaxis], _header(100, 100, 1, bunit="Jy/pixel")),
                           tmp_path / "m.png", "model")
    assert (info.stretch, info.unit) == ("log", "mJy/pixel")
    assert (info.vmin, info.vmax) == pytest.approx((0.03, 30.0))


@pytest.mark.parametrize(("fill", "reason"), [(np.nan, "NaN"), (0.0, "zero")])
def test_blank_plane_still_gives_a_png_that_says_so(tmp_path, fill, reason):
    path = _write(tmp_path / "b.fits", np.full((1, 50, 50), fill), _header(50, 50, 1))
    info = image_thumbnail(path, tmp_path / "b.png", "pbcor")
    assert reason in info.blank and info.stretch == "none" and reason in info.caption
    assert _png(info.path).shape[:2] == (320, 320)


def test_cube_plane_choice_and_per_channel_beams(tmp_path):
    cube = np.stack([a * _gauss(40, 40, 20, 20, 3.0) for a in (1.0, 2.0, 3.0)])
    beams = fits.BinTableHDU.from_columns([
        fits.Column(name="BMAJ", format="1D", unit="arcsec", array=[0.5, 0.6, 0.7]),
        fits.Column(name="BMIN", format="1D", unit="arcsec", array=[0.4, 0.4, 0.4]),
        fits.Column(name="BPA", format="1D", unit="deg", array=[0.0, 10.0, 20.0]),
        fits.Column(name="CHAN", format="1J", array=[0, 1, 2]), fits.Column(name="POL", format="1J", array=[0, 0, 0])],
        name="BEAMS")
    path = _write(tmp_path / "c.fits", cube, _header(40, 40, 3), [beams])
    mid = image_thumbnail(path, tmp_path / "mid.png", "image")
    assert mid.channel == 1 and mid.nchan == 3 and mid.vmax == pytest.approx(2.0)
    assert "middle channel 1" in mid.caption and "230.0010 GHz" in mid.caption
    assert mid.beam_px == pytest.approx((6.0, 4.0, 10.0))
    last = image_thumbnail(path, tmp_path / "last.png", "image", channel=2)
    assert last.vmax == pytest.approx(3.0) and last.beam_px == pytest.approx((7.0, 4.0, 20.0))
    with pytest.raises(ValueError, match="channel 3"):
        image_thumbnail(path, tmp_path / "bad.png", "image", channel=3)
    assert not (tmp_path / "bad.png").exists()


def test_mask_outline_and_a_mask_that_does_not_fit(tmp_path):
    img = _write(tmp_path / "i.fits", _gauss(60, 60, 30, 30, 5.0)[np.newaxis], _header(60, 60, 1))
    mask = _write(tmp_path / "m.fits", (_gauss(60, 60, 30, 30, 5.0) > 0.3)[np.newaxis].astype(float),
                  _header(60, 60, 1, bunit="", beam=None))
    info = image_thumbnail(img, tmp_path / "i.png", "image", mask_fits=mask)
    assert "clean mask" in info.caption
    small = _write(tmp_path / "s.fits", np.ones((1, 30, 30)), _header(30, 30, 1, bunit="", beam=None))
    with pytest.raises(ValueError, match="does not match"):
        image_thumbnail(img, tmp_path / "j.png", "image", mask_fits=small)
    assert not (tmp_path / "j.png").exists()


# ---------------------------------------------------------------- atomic writes


def test_write_is_atomic(gaussian_image, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    image_thumbnail(gaussian_image[0], out / "a.png", "image")
    assert sorted(os.listdir(out)) == ["a.png"]  # no temporary file left
    before = (out / "a.png").read_bytes()
    from matplotlib.figure import Figure

    def broken(self, *a, **k):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="renderer failed"):
        image_thumbnail(gaussian_image[0], out / "a.png", "image")
    with pytest.raises(RuntimeError):
        image_thumbnail(gaussian_image[0], out / "b.png", "image")
    assert sorted(os.listdir(out)) == ["a.png"] and (out / "a.png").read_bytes() == before
    monkeypatch.undo()
    with pytest.raises(WriteError):
        image_thumbnail(gaussian_image[0], tmp_path / "missing" / "c.png", "image")
    assert not (tmp_path / "missing").exists()


# ---------------------------------------------------------------- cubes


@pytest.fixture
def line_cube(tmp_path):
    """40 channels on a 64 x 48 grid, frequency decreasing (CDELT3 = -1 MHz, CRPIX3 = 5): a line
    of peak 0.5 Jy/beam (sigma 2 channels) at channel 23 in pixel (x=50, y=12); a beam-shaped
    source of flux S_k = 0.2 + 0.1 k / 40 Jy at (x=20, y=30) (beam 0.5" circular = 5 px FWHM)."""
    rng = np.random.default_rng(5)
    k = np.arange(40)
    line = 0.5 * np.exp(-0.5 * ((k - 23) / 2.0) ** 2)
    flux = 0.2 + 0.1 * k / 40
    sigma_px = 5.0 / (2 * math.sqrt(2 * math.log(2)))
    cube = rng.normal(0.0, 1e-4, (40, 48, 64))
    cube += flux[:, None, None] * _gauss(48, 64, 20, 30, sigma_px)[None]
    cube[:, 12, 50] += line
    mask = (_gauss(48, 64, 20, 30, 12 / math.sqrt(2)) > math.exp(-1)).astype(float)  # radius 12 px
    h = _header(64, 48, 40, df=-1e6, crpix3=5.0, beam=(0.5, 0.5, 0.0))
    return (_write(tmp_path / "cube.fits", cube, h),
            _write(tmp_path / "mask.fits", np.repeat(mask[None], 40, axis=0), _header(64, 48, 40, bunit="", beam=None)),
            line, flux)


def test_peak_spectrum_finds_the_injected_line(line_cube, tmp_path):
    cube, mask, line, flux = line_cube
    info = peak_spectrum(cube, tmp_path / "s.png", mask_fits=mask)
    assert (info.peak_channel, info.peak_pixel) == (23, (50, 12))
    expected_ghz = (230e9 + (np.arange(40) + 1 - 5) * -1e6) / 1e9
    np.testing.assert_allclose(info.frequency_ghz, expected_ghz, rtol=1e-12)
    assert info.frequency_ghz[23] == pytest.approx(229.981)
    np.testing.assert_allclose(info.peak, line, atol=5e-4)  # 5 sigma of the noise
    np.testing.assert_allclose(info.mask_flux, flux, rtol=1e-3)  # sum / beam area = the flux
    assert np.array_equal(info.channel, np.arange(40))
    assert _png(info.path).shape[:2] == (300, 480) and "229.98100 GHz" in info.caption


def test_peak_spectrum_of_a_blank_cube(tmp_path):
    path = _write(tmp_path / "n.fits", np.full((5, 8, 8), np.nan), _header(8, 8, 5))
    info = peak_spectrum(path, tmp_path / "n.png")
    assert "no finite pixel" in info.caption and _png(info.path).shape[:2] == (300, 480)


def _jy(info) -> float:
    """The factor from Jy to the moment map's unit (Jy, mJy or µJy ...)."""
    return {"J": 1.0, "m": 1e3, "µ": 1e6}[info.unit[0]]


def _line(nchan: int, amp: float, centre: float, sigma: float) -> np.ndarray:
    return amp * np.exp(-0.5 * ((np.arange(nchan) - centre) / sigma) ** 2)


def test_moment0_integrates_a_line_in_km_per_s(tmp_path):
    cube = np.zeros((64, 30, 30))
    cube[:, 20, 10] = _line(64, 0.3, 30, 3.0)
    cube[:, 0, 0] = np.nan  # blank in every channel
    rest = 230.538e9
    path = _write(tmp_path / "l.fits", cube, _header(30, 30, 64, df=2e6, restfrq=rest))
    info = moment0(path, tmp_path / "m.png")
    dv = C_KMS * 2e6 / rest  # radio velocity width of a channel (km/s)
    assert info.unit == "Jy/beam.km/s"
    assert info.moment[20, 10] == pytest.approx(0.3 * math.sqrt(2 * math.pi) * 3.0 * dv, rel=1e-6)
    assert np.isnan(info.moment[0, 0]) and info.moment[5, 5] == 0.0
    half = moment0(path, tmp_path / "h.png", channels=(0, 29))
    full = 0.3 * math.sqrt(2 * math.pi) * 3.0
    assert half.moment[20, 10] == pytest.approx((full - 0.3) / 2 * dv * _jy(half), rel=1e-6)  # channels below the centre
    assert _png(info.path).shape[:2] == (320, 320)


def test_moment0_without_rest_frequency_in_ghz_and_of_a_velocity_axis(tmp_path):
    cube = np.zeros((64, 30, 30))
    cube[:, 20, 10] = _line(64, 0.3, 30, 3.0)
    info = moment0(_write(tmp_path / "f.fits", cube, _header(30, 30, 64, df=2e6)), tmp_path / "f.png")
    assert info.unit == "mJy/beam.GHz"  # 4.5e-3 Jy/beam.GHz reads better in mJy
    assert info.moment[20, 10] == pytest.approx(0.3 * math.sqrt(2 * math.pi) * 3.0 * 2e-3 * 1e3, rel=1e-6)
    vel = _write(tmp_path / "v.fits", cube, _header(30, 30, 64, f0=0.0, df=5000.0, ctype3="VRAD", restfrq=230e9))
    info = moment0(vel, tmp_path / "v.png")  # channels 5 km/s wide
    assert info.moment[20, 10] == pytest.approx(0.3 * math.sqrt(2 * math.pi) * 3.0 * 5.0 * _jy(info), rel=1e-6)


# ---------------------------------------------------------------- dataset figures


def _wgs84(lon_deg: float, lat_deg: float, h: float) -> tuple[float, float, float]:
    """ITRF (m) of a WGS84 geodetic position: X = (N + h) cos(lat) cos(lon), ..., Z = (N (1 - e^2) + h) sin(lat)."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    n = a / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    return ((n + h) * math.cos(lat) * math.cos(lon), (n + h) * math.cos(lat) * math.sin(lon),
            (n * (1 - e2) + h) * math.sin(lat))


def test_array_plot_east_and_north_distances(tmp_path):
    """W and E on one parallel, S and N on one meridian, symmetric about that meridian: the array
    centre lies on it, so W->E points due east (length: the parallel's chord) and S->N due north."""
    lon, lat, h, d = -67.755, -23.029, 5050.0, 0.01  # ALMA; d: degrees between antennas (~1.1 km)
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    n = a / math.sqrt(1 - e2 * math.sin(math.radians(lat)) ** 2)
    east_chord = 2 * (n + h) * math.cos(math.radians(lat)) * math.sin(math.radians(d) / 2)
    pos = {"W": _wgs84(lon - d / 2, lat, h), "E": _wgs84(lon + d / 2, lat, h), "S": _wgs84(lon, lat, h),
           "N": _wgs84(lon, lat + d, h)}
    ds = Dataset(telescope="ALMA", antennas=[Antenna(name=k, position=v) for k, v in pos.items()])
    info = array_plot(ds, tmp_path / "a.png")
    e, nn, u = info.east_m, info.north_m, info.up_m
    assert e[1] - e[0] == pytest.approx(east_chord, abs=1e-6)
    assert abs(nn[1] - nn[0]) < 1e-6 and abs(u[1] - u[0]) < 1e-6
    xyz = np.array(list(pos.values()))
    north_chord = math.dist(xyz[2], xyz[3])
    assert abs(e[3] - e[2]) < 1e-6
    assert math.hypot(nn[3] - nn[2], u[3] - u[2]) == pytest.approx(north_chord, abs=1e-6)
    assert nn[3] - nn[2] == pytest.approx(north_chord, abs=0.01)
    assert abs(u[3] - u[2]) < 0.1  # the chord tilts by ~d/4 (4e-5 rad, 5 cm) from the tangent plane
    dists = [math.dist(p, q) for i, p in enumerate(xyz) for q in xyz[i + 1:]]
    assert (info.baseline_min_m, info.baseline_max_m) == pytest.approx((min(dists), max(dists)), abs=1e-6)
    assert info.names == ("W", "E", "S", "N") and _png(info.path).shape[:2] == (480, 480)


def test_array_plot_without_positions(tmp_path):
    info = array_plot(Dataset(antennas=[Antenna(name="A")]), tmp_path / "a.png")
    assert info.baseline_max_m is None and "1 antennas without a position" in info.caption
    assert _png(info.path).shape[:2] == (480, 480)


def test_scans_plot_rows_and_times(tmp_path):
    day = 60000 * 86400.0
    ds = Dataset(fields=[FieldFacts(id=0, name="BPCAL"), FieldFacts(id=1, name="TGT")], scans=[
        Scan(number=1, intents=["BANDPASS", "AMPLITUDE"], field_ids=[0], start=day + 3600 * 23.5, end=day + 3600 * 23.6),
        Scan(number=2, intents=["TARGET"], field_ids=[1], start=day + 3600 * 23.7, end=day + 3600 * 24.2),
        Scan(number=3, intents=["TARGET"], field_ids=[1]),  # no times: left out
        Scan(number=4, intents=["PHASE"], field_ids=[7], start=day + 3600 * 24.3, end=day + 3600 * 24.4)])
    info = scans_plot(ds, tmp_path / "s.png")
    assert info.rows == ("BPCAL", "TGT", "field 7") and info.n_scans == 3
    assert info.day_start_mjd_s == day
    img = _png(info.path)
    assert img.shape[:2] == (info.height_px, 720) and img.std() > 0.05


def test_figure_functions_import_lazily():
    assert figures.image_thumbnail is image_thumbnail
    with pytest.raises(AttributeError):
        figures.no_such_figure  # noqa: B018


# ---------------------------------------------------------------- alma_sim (real products)

# Local tangent-plane positions (x east, y north, z up; metres) of five pads in CASA's
# casadata/__data__/alma/simmos/alma.cycle4.3.cfg (casadata 2025.9.22, with CASA 6.7.0), the
# configuration alma_sim was simulated with; read from the file, not computed by almarules.
CFG_LOC = {"A001": (-33.89412596, -712.7516484, -2.330089496), "A002": (-17.45390887, -709.6086972, -2.32867142),
           "A004": (-5.421013146, -723.7911045, -2.334250518), "A068": (-140.507228, -651.1640802, -0.634931252),
           "A079": (58.74951452, -939.6691062, -0.925793215)}


@pytest.fixture(scope="module")
def alma_sim_products(shared_ms, tmp_path_factory):
    """The mfs image (spw 0) and the line cube (spw 1) of SIMGAL_1 with every product, and the facts."""
    from almarules.engine.evaluate.api import default_rules, load_dataset, load_program
    from almarules.engine.stages.imaging.stage import Stage, make_images

    ms = shared_ms("alma_sim.ms")
    out = tmp_path_factory.mktemp("figures_alma_sim")
    facts = load_dataset([ms])
    stage = Stage(load_program(default_rules()), facts, [ms], out, extra_products=True)
    make_images(stage, ["SIMGAL_1.TARGET.0.mfs", "SIMGAL_1.TARGET.1.cube"])
    return out, facts


def test_alma_sim_layout_matches_the_casa_configuration(alma_sim_products, tmp_path):
    _, facts = alma_sim_products
    info = array_plot(facts, tmp_path / "array.png")
    stations = {a.station: i for i, a in enumerate(facts.antennas)}
    ref = stations["A001"]
    for pad, (x, y, z) in CFG_LOC.items():  # measured: east/north agree to 0.7 mm, up to 3 cm
        i = stations[pad]
        x0, y0, z0 = CFG_LOC["A001"]
        assert info.east_m[i] - info.east_m[ref] == pytest.approx(x - x0, abs=5e-3)
        assert info.north_m[i] - info.north_m[ref] == pytest.approx(y - y0, abs=5e-3)
        assert info.up_m[i] - info.up_m[ref] == pytest.approx(z - z0, abs=0.05)
    assert len(info.names) == 40 and info.baseline_min_m == pytest.approx(15.1, abs=0.1)
    scans = scans_plot(facts, tmp_path / "scans.png")
    assert scans.n_scans == 10 and set(scans.rows) == {"J1520-2500", "J1607-2730", "J1554-3140", "SIMGAL_1"}


def test_alma_sim_thumbnails_and_the_line(alma_sim_products, tmp_path):
    from astropy.wcs import WCS

    from conftest import SHARED_DATA

    out, _ = alma_sim_products
    truth = json.loads((SHARED_DATA / "alma_sim.truth.json").read_text())
    line = truth["sky_model"]["target"]["components"][2]
    mfs = sorted(out.glob("*SIMGAL_1_sci.spw0.mfs.I.*.fits"))
    assert len(mfs) == 7
    for path in mfs:
        kind = path.name.split(".")[-2]
        info = image_thumbnail(path, tmp_path / f"{kind}.png", kind, pblimit=0.2)
        img = _png(info.path)
        assert img.shape[:2] == (320, 320) and info.blank is None and img.std() > 0.05, kind
    (cube,) = out.glob("*SIMGAL_1_sci.spw1.cube.I.image.fits")
    spec = peak_spectrum(cube, tmp_path / "spec.png")
    width_ghz = abs(spec.frequency_ghz[1] - spec.frequency_ghz[0])
    # the line: 80 mJy at the phase centre, LSRK centre from the simulation's truth (the cube is LSRK)
    assert abs(spec.frequency_ghz[spec.peak_channel] - line["centre_freq_lsrk_hz"] / 1e9) < width_ghz
    w = WCS(fits.getheader(cube)).celestial
    sky = w.pixel_to_world(*spec.peak_pixel)
    assert sky.ra.deg == pytest.approx(240.0, abs=1.5 * 0.1337 / 3600 / math.cos(math.radians(30)))
    assert sky.dec.deg == pytest.approx(-30.0, abs=1.5 * 0.1337 / 3600)
