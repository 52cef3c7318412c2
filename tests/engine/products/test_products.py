"""Image products (engine/products/fits.py): names, FITS header and WCS, beams, provenance, atomic writes."""

from __future__ import annotations

import math
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from almarules.engine.products import fits as products
from almarules.engine.products.fits import (
    product_name,
    read_image,
    read_image_wcs,
    read_provenance,
    sanitize_name,
    write_image,
)
from almarules.kernels.beam import Beam

RA, DEC = 141.7125, -19.5  # deg; |dec| > 0 so that the 1/cos(dec) factor matters
CELL = 0.25  # arcsec
FREQ, WIDTH = 230.0e9, -488.28125e3  # Hz (a lower-sideband spw: decreasing frequency)
NX, NY, NCHAN = 64, 48, 5  # deliberately NX != NY to catch transposes


def _cube() -> np.ndarray:
    """(nchan, nx, ny) with every value distinct."""
    return np.arange(NCHAN * NX * NY, dtype=np.float64).reshape(NCHAN, NX, NY) / 7.0


def _write(path: Path, data: np.ndarray, **kw) -> Path:
    args = dict(ra_deg=RA, dec_deg=DEC, cell_arcsec=CELL, freq_hz=FREQ, chan_width_hz=WIDTH,
                object_name="NGC 2872")
    args.update(kw)
    return write_image(path, data, **args)


# ----------------------------------------------------------------------------- names

def test_product_name_documented_example():
    assert (product_name("uid://A001/X2fa/X2dd", "NGC 2872", "TARGET", [25], "cube")
            == "uid___A001_X2fa_X2dd.NGC_2872_sci.spw25.cube.I.pbcor.fits")


def test_product_name_intents_spws_kind():
    assert product_name("uid___A001_X2fa_X2dd", "J0854+2006", "bandpass", (16, 18, 20, 22), "mfs",
                        kind="pb") == "uid___A001_X2fa_X2dd.J0854+2006_bp.spw16_18_20_22.mfs.I.pb.fits"
    abbrevs = {i: product_name("uid://A/B/C", "f", i, 1, "mfs").split(".")[1] for i in
               ("TARGET", "CHECK", "PHASE", "BANDPASS", "AMPLITUDE", "POLARIZATION")}
    assert abbrevs == {"TARGET": "f_sci", "CHECK": "f_chk", "PHASE": "f_ph", "BANDPASS": "f_bp",
                       "AMPLITUDE": "f_flux", "POLARIZATION": "f_pol"}


def test_name_sanitising():
    # only [A-Za-z0-9_.+-] survive; each other character (incl. non-ASCII) becomes one "_"
    assert sanitize_name("Elias 2-27 (core)/b*") == "Elias_2-27__core__b_"
    assert sanitize_name("M+31.x-é") == "M+31.x-_"
    name = product_name("uid://A001/X2fa/X2dd", "IRAS 16293-2422 B", "CHECK", ["25"], "cont")
    assert name == "uid___A001_X2fa_X2dd.IRAS_16293-2422_B_chk.spw25.cont.I.pbcor.fits"


@pytest.mark.parametrize("kw", [dict(intent="ATMOSPHERE"), dict(spw_ids=[]), dict(spw_ids=["2a"]),
                                dict(spw_ids=[-1]), dict(specmode="cu.be"), dict(kind=""),
                                dict(field="")])
def test_product_name_rejects(kw):
    args = dict(mous_id="uid://A001/X2fa/X2dd", field="f", intent="TARGET", spw_ids=[25], specmode="cube")
    args.update(kw)
    with pytest.raises(ValueError):
        product_name(**args)


# ----------------------------------------------------------------------------- round trip

def test_cube_round_trip_data_and_header(tmp_path):
    data = _cube()
    date = datetime(2017, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    path = _write(tmp_path / "c.fits", data, beam=Beam(0.9, 0.6, -35.0), restfreq_hz=230.538e9,
                  bitpix=-64, date=date, history=["tclean-equivalent: niter=1000"])
    back, h, beams = read_image(path)
    assert back.shape == (NCHAN, NX, NY)
    np.testing.assert_array_equal(back, data)  # float64: bit-exact
    with fits.open(path) as hdul:
        assert len(hdul) == 1
        assert hdul[0].data.shape == (1, NCHAN, NY, NX)
        np.testing.assert_array_equal(hdul[0].data[0, 2], data[2].T)  # FITS plane = image.T
        assert hdul[0].verify_checksum() == 1 and hdul[0].verify_datasum() == 1
    assert (h["NAXIS"], h["NAXIS1"], h["NAXIS2"], h["NAXIS3"], h["NAXIS4"]) == (4, NX, NY, NCHAN, 1)
    assert [h[f"CTYPE{i}"] for i in range(1, 5)] == ["RA---SIN", "DEC--SIN", "FREQ", "STOKES"]
    assert [h[f"CUNIT{i}"] for i in range(1, 4)] == ["deg", "deg", "Hz"]
    assert (h["CRVAL1"], h["CRVAL2"], h["CRVAL3"], h["CRVAL4"]) == (RA, DEC, FREQ, 1.0)
    assert (h["CRPIX1"], h["CRPIX2"], h["CRPIX3"], h["CRPIX4"]) == (NX // 2 + 1, NY // 2 + 1, 1, 1)
    assert h["CDELT1"] == pytest.approx(-CELL / 3600, rel=1e-13)  # header floats carry ~14 digits
    assert h["CDELT2"] == pytest.approx(CELL / 3600, rel=1e-13)
    assert h["CDELT3"] == WIDTH
    assert (h["RADESYS"], h["EQUINOX"], h["SPECSYS"], h["RESTFRQ"]) == ("ICRS", 2000.0, "LSRK", 230.538e9)
    assert (h["BUNIT"], h["OBJECT"], h["TELESCOP"], h["ORIGIN"]) == ("Jy/beam", "NGC 2872", "ALMA", "almarules")
    assert h["DATE"] == "2017-03-04T05:06:07"
    assert h["BITPIX"] == -64
    assert "tclean-equivalent: niter=1000" in str(h["HISTORY"])
    # header floats keep ~15 significant digits (astropy writes 20-character values)
    (b,) = beams
    assert (b.bmaj_arcsec, b.bmin_arcsec, b.bpa_deg) == pytest.approx((0.9, 0.6, -35.0), rel=1e-13)


def test_mfs_float32_default_and_optional_keywords(tmp_path):
    img = np.random.default_rng(1).normal(size=(NX, NY))
    path = _write(tmp_path / "m.fits", img, specframe="BARY", bunit="Jy/beam", stokes="I")
    back, h, beams = read_image(path)
    assert h["BITPIX"] == -32 and back.shape == (1, NX, NY)
    np.testing.assert_array_equal(back[0], img.astype(np.float32))
    assert h["SPECSYS"] == "BARYCENT"
    assert "RESTFRQ" not in h and "BMAJ" not in h and beams == []


def test_beam_keywords_in_degrees(tmp_path):
    b = Beam(1.8, 1.2, 63.5)
    _, h = read_image_wcs(_write(tmp_path / "b.fits", _cube()[0], beam=b))
    assert h["BMAJ"] == pytest.approx(1.8 / 3600, rel=1e-15)
    assert h["BMIN"] == pytest.approx(1.2 / 3600, rel=1e-15)
    assert h["BPA"] == 63.5  # position angles are degrees already


def test_per_channel_beams_table(tmp_path):
    beams = [Beam(1.0 + 0.01 * k, 0.5 + 0.02 * k, 10.0 * k) for k in range(NCHAN)]
    beams[1] = Beam(2.0, 1.9, 0.0)  # largest: the median-area beam is channel 3's
    path = _write(tmp_path / "pc.fits", _cube(), beam=beams)
    back_data, h, back = read_image(path)
    assert back == beams  # the table holds float64: exact
    assert h["CASAMBM"] is True
    assert h["BMAJ"] == pytest.approx(beams[3].bmaj_arcsec / 3600)  # area order: ch 0, 2, 3, 4, 1
    with fits.open(path) as hdul:
        t = hdul["BEAMS"]
        assert (t.header["NCHAN"], t.header["NPOL"]) == (NCHAN, 1)
        assert [t.header[f"TUNIT{i}"] for i in (1, 2, 3)] == ["arcsec", "arcsec", "deg"]
        assert list(t.data["CHAN"]) == list(range(NCHAN)) and set(t.data["POL"]) == {0}
    # identical per-channel beams collapse to the single-beam form
    _, h1, b1 = read_image(_write(tmp_path / "same.fits", _cube(), beam=[Beam(1, 1, 0)] * NCHAN))
    assert "CASAMBM" not in h1 and len(b1) == 1
    assert (b1[0].bmaj_arcsec, b1[0].bmin_arcsec, b1[0].bpa_deg) == pytest.approx((1, 1, 0), rel=1e-13)
    with pytest.raises(ValueError, match="beams given"):
        _write(tmp_path / "bad.fits", _cube(), beam=beams[:2])


def test_provenance_hierarch_and_long_values(tmp_path):
    prov = {"ruleset_hash": "sha256:" + "0123456789abcdef" * 4, "tlimit": 4.0, "dr_correction": 1.2345678901234567,
            "rules": "rules/alma/cycle4 " * 10 + "end", "niter": 1000}
    h = read_image_wcs(_write(tmp_path / "p.fits", _cube()[0], provenance=prov))[1]
    assert read_provenance(h) == prov  # long strings continue on CONTINUE cards; floats exact
    assert h["ALMARULES ruleset_hash"] == prov["ruleset_hash"]
    with pytest.raises(ValueError):
        _write(tmp_path / "q.fits", _cube()[0], provenance={"bad key=": "x"})
    with pytest.raises(ValueError):
        _write(tmp_path / "q.fits", _cube()[0], provenance={"x": float("nan")})
    assert not (tmp_path / "q.fits").exists()


# ----------------------------------------------------------------------------- WCS

def test_wcs_phase_centre_and_offsets(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy must not need to "fix" any keyword
        w, _ = read_image_wcs(_write(tmp_path / "w.fits", _cube()))
    cx, cy = NX // 2, NY // 2  # 0-based phase-centre pixel of the gridding convention
    ra, dec, f, s = w.pixel_to_world_values(cx, cy, 0, 0)
    assert (float(ra), float(dec), float(f), float(s)) == (RA, DEC, FREQ, 1.0)  # exact at CRPIX

    cell_deg = CELL / 3600
    # one pixel east (ix - 1): RA grows by cell / cos(dec); the SIN projection deviates from this
    # flat-sky value by ~ (offset)^2 relative, i.e. < 1e-12 deg here. 1e-6 deg (3.6 mas) is far
    # below one cell (6.9e-5 deg) and a wrong sign or a missing 1/cos(dec) (a 6% error, 4e-6 deg)
    # both fail it; the exact spherical value is checked to 1e-11 deg below.
    ra_e, dec_e, _, _ = w.pixel_to_world_values(cx - 1, cy, 0, 0)
    assert float(ra_e) - RA == pytest.approx(cell_deg / math.cos(math.radians(DEC)), abs=1e-6)
    assert float(ra_e) > RA
    # exact SIN: l = cell (rad), m = 0 -> tan(dRA) = l / (cos(dec0) sqrt(1 - l^2))
    l = math.radians(cell_deg) * 10
    ra10, dec10, _, _ = w.pixel_to_world_values(cx - 10, cy, 0, 0)
    d_ra = math.degrees(math.atan2(l, math.cos(math.radians(DEC)) * math.sqrt(1 - l * l)))
    d_dec = math.degrees(math.asin(math.sin(math.radians(DEC)) * math.sqrt(1 - l * l)))
    assert float(ra10) - RA == pytest.approx(d_ra, abs=1e-11)
    assert float(dec10) == pytest.approx(d_dec, abs=1e-11)
    # one pixel north (iy + 1): Dec grows by one cell, RA unchanged
    ra_n, dec_n, _, _ = w.pixel_to_world_values(cx, cy + 1, 0, 0)
    assert float(ra_n) == pytest.approx(RA, abs=1e-12)
    assert float(dec_n) - DEC == pytest.approx(cell_deg, abs=1e-6)
    # and back: the world position of (ra, dec) is the phase-centre pixel
    px, py, _, _ = w.world_to_pixel_values(RA, DEC, FREQ, 1.0)
    assert (float(px), float(py)) == pytest.approx((cx, cy), abs=1e-9)


def test_wcs_frequency_axis(tmp_path):
    w, _ = read_image_wcs(_write(tmp_path / "f.fits", _cube()))
    k = np.arange(NCHAN)
    _, _, freq, _ = w.pixel_to_world_values(np.full(NCHAN, NX // 2), np.full(NCHAN, NY // 2), k, np.zeros(NCHAN))
    np.testing.assert_allclose(freq, FREQ + k * WIDTH, rtol=1e-14, atol=0)
    assert w.wcs.specsys == "LSRK"
    assert w.world_axis_physical_types[:3] == ["pos.eq.ra", "pos.eq.dec", "em.freq"]


def test_point_source_lands_at_its_sky_position(tmp_path):
    """A pixel set in the gridding convention appears at l = (nx//2 - ix) cell east, m north."""
    img = np.zeros((NX, NY))
    ix, iy = NX // 2 - 3, NY // 2 + 5  # 3 cells east, 5 cells north
    img[ix, iy] = 1.0
    path = _write(tmp_path / "pt.fits", img)
    w, _ = read_image_wcs(path)
    with fits.open(path) as hdul:
        _, _, y, x = np.unravel_index(np.argmax(hdul[0].data), hdul[0].data.shape)
    ra, dec, _, _ = w.pixel_to_world_values(x, y, 0, 0)
    assert (x, y) == (ix, iy)
    assert float(ra) - RA == pytest.approx(3 * CELL / 3600 / math.cos(math.radians(DEC)), abs=1e-6)
    assert float(dec) - DEC == pytest.approx(5 * CELL / 3600, abs=1e-6)


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kw", [dict(cell_arcsec=0.0), dict(freq_hz=-1.0), dict(chan_width_hz=0.0),
                                dict(dec_deg=91.0), dict(ra_deg=float("nan")), dict(specframe="XYZ"),
                                dict(stokes="W"), dict(bitpix=16), dict(restfreq_hz=0.0)])
def test_write_image_rejects_bad_arguments(tmp_path, kw):
    with pytest.raises(ValueError):
        _write(tmp_path / "x.fits", _cube()[0], **kw)
    assert list(tmp_path.iterdir()) == []


def test_write_image_rejects_bad_shapes(tmp_path):
    for bad in (np.zeros(5), np.zeros((1, 2, 3, 4)), np.zeros((0, 4))):
        with pytest.raises(ValueError):
            _write(tmp_path / "x.fits", bad)


# ----------------------------------------------------------------------------- atomic writing

def test_atomic_write_leaves_no_temp_file(tmp_path):
    path = _write(tmp_path / "a.fits", _cube())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fits"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def failing_writeto(self, fileobj, *args, **kwargs):
        fileobj.write(b"SIMPLE  =                    T" + b" " * 50)  # a partial header
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", failing_writeto)
    with pytest.raises(OSError, match="disk full"):
        _write(tmp_path / "a.fits", _cube())
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.fits", _cube())
    before = path.read_bytes()

    def failing(fh):
        fh.write(b"garbage")
        raise KeyboardInterrupt  # even a BaseException cleans up

    with pytest.raises(KeyboardInterrupt):
        products.write_bytes_atomic(path, failing)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fits"]


# ----------------------------------------------------------------------------- streaming cubes

_ARGS = dict(ra_deg=RA, dec_deg=DEC, cell_arcsec=CELL, freq_hz=FREQ, chan_width_hz=WIDTH, object_name="NGC 2872")
_EXTRAS = dict(restfreq_hz=230.538e9, history=["tclean-equivalent: niter=1000"],
               provenance={"ruleset_hash": "sha256:" + "0123456789abcdef" * 4, "niter": 1000})


def _stream(path: Path, data: np.ndarray, plane_beams: list[Beam] | None = None, **kw) -> Path:
    """Write `data` (nchan, nx, ny) with a CubeWriter, plane by plane."""
    nchan, nx, ny = data.shape
    with products.CubeWriter(path, nx, ny, nchan, **{**_ARGS, **kw}) as cw:
        for k in range(nchan):
            cw.write_plane(k, data[k], beam=None if plane_beams is None else plane_beams[k])
    return path


def _cards(header: fits.Header) -> list[tuple[str, object, str]]:
    """(keyword, value, comment) of every card but DATE, the checksums and blank cards."""
    return [(c.keyword, c.value, c.comment) for c in header.cards
            if c.keyword not in ("DATE", "CHECKSUM", "DATASUM", "")]


def _assert_valid(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path) as hdul:
            hdul.verify("exception")
            for hdu in hdul:
                assert hdu.verify_checksum() == 1 and hdu.verify_datasum() == 1


_BEAM_CASES = {
    "none": None,
    "single": Beam(0.9, 0.6, -35.0),
    "per-channel": [Beam(1.0 + 0.01 * k, 0.5 + 0.02 * k, 10.0 * k) for k in range(NCHAN)],
    "identical": [Beam(1.0, 0.8, 5.0)] * NCHAN,
}


@pytest.mark.parametrize("bitpix", [-32, -64])
@pytest.mark.parametrize("case", sorted(_BEAM_CASES))
def test_cube_writer_equals_write_image(tmp_path, case, bitpix):
    beam = _BEAM_CASES[case]
    data = _cube()
    ref = _write(tmp_path / "ref.fits", data, beam=beam, bitpix=bitpix, **_EXTRAS)
    per_plane = [beam] * NCHAN if isinstance(beam, Beam) else beam
    # beams once for the cube (beam=, i.e. set_beams) or one with each plane
    for name, kw, plane_beams in (("a.fits", dict(beam=beam), None), ("b.fits", {}, per_plane)):
        path = _stream(tmp_path / name, data, plane_beams, bitpix=bitpix, **kw, **_EXTRAS)
        _assert_valid(path)
        d0, h0, b0 = read_image(ref)
        d1, h1, b1 = read_image(path)
        np.testing.assert_array_equal(d1, d0)
        assert d1.dtype.itemsize == d0.dtype.itemsize == abs(bitpix) // 8
        assert _cards(h1) == _cards(h0)
        assert h1["DATASUM"] == h0["DATASUM"] and "DATE" in h1
        assert b1 == b0
        assert read_image_wcs(path)[0].to_header() == read_image_wcs(ref)[0].to_header()
        with fits.open(ref) as r, fits.open(path) as s:
            assert [hdu.name for hdu in s] == [hdu.name for hdu in r]
            if "BEAMS" in r:
                assert _cards(s["BEAMS"].header) == _cards(r["BEAMS"].header)
                assert s["BEAMS"].data.tobytes() == r["BEAMS"].data.tobytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fits", "b.fits", "ref.fits"]


def test_cube_writer_reserved_header_shrinks_to_blank_cards(tmp_path):
    """The header reserved for the beam cards is rewritten in place, whatever block it ends in."""
    data = _cube()[:2]
    shrunk = 0  # cases where the final header needs one block less than was reserved
    for nhistory in range(40):  # moves the end of the header through a whole block
        history = [f"step {i}" for i in range(nhistory)]
        ref = _write(tmp_path / "ref.fits", data, history=history)
        path = _stream(tmp_path / "s.fits", data, history=history)
        _assert_valid(path)
        with fits.open(ref) as r, fits.open(path) as s:
            assert _cards(s[0].header) == _cards(r[0].header) and "BMAJ" not in s[0].header
            assert s.fileinfo(0)["datLoc"] % 2880 == 0
            shrunk += s.fileinfo(0)["datLoc"] > r.fileinfo(0)["datLoc"]
            np.testing.assert_array_equal(s[0].data, r[0].data)
    assert shrunk > 0


def test_cube_writer_per_channel_beams_table_and_median(tmp_path):
    beams = [Beam(1.0 + 0.01 * k, 0.5 + 0.02 * k, 10.0 * k) for k in range(NCHAN)]
    beams[1] = Beam(2.0, 1.9, 0.0)  # largest: the median-area beam is channel 3's
    for name, plane_beams in (("set.fits", None), ("planes.fits", beams)):
        data = _cube()
        nchan, nx, ny = data.shape
        with products.CubeWriter(tmp_path / name, nx, ny, nchan, **_ARGS) as cw:
            for k in range(nchan):
                cw.write_plane(k, data[k], beam=None if plane_beams is None else plane_beams[k])
            if plane_beams is None:
                cw.set_beams(beams)  # any time before the end of the block
        _, h, back = read_image(tmp_path / name)
        assert back == beams
        assert h["CASAMBM"] is True
        assert (h["BMAJ"], h["BMIN"], h["BPA"]) == pytest.approx(
            (beams[3].bmaj_arcsec / 3600, beams[3].bmin_arcsec / 3600, beams[3].bpa_deg), rel=1e-13)
        with fits.open(tmp_path / name) as hdul:
            t = hdul["BEAMS"]
            assert (t.header["NCHAN"], t.header["NPOL"]) == (NCHAN, 1)
            assert list(t.data["CHAN"]) == list(range(NCHAN))


def test_cube_writer_identical_beams_collapse(tmp_path):
    path = _stream(tmp_path / "same.fits", _cube(), [Beam(1.2, 0.9, 30.0)] * NCHAN)
    _, h, beams = read_image(path)
    assert "CASAMBM" not in h and len(beams) == 1
    assert (beams[0].bmaj_arcsec, beams[0].bmin_arcsec, beams[0].bpa_deg) == pytest.approx((1.2, 0.9, 30.0), rel=1e-13)
    with fits.open(path) as hdul:
        assert len(hdul) == 1


@pytest.mark.parametrize("order", [[1], [0, 0], [0, 2], [0, 1, 2, 3, 4, 5]])
def test_cube_writer_planes_out_of_order_raise(tmp_path, order):
    data = _cube()
    with pytest.raises(ValueError):
        with products.CubeWriter(tmp_path / "c.fits", NX, NY, NCHAN, **_ARGS) as cw:
            for k in order:
                cw.write_plane(k, data[k % NCHAN])
    assert list(tmp_path.iterdir()) == []


def test_cube_writer_exception_keeps_existing_target(tmp_path):
    path = _write(tmp_path / "c.fits", _cube())
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="imaging failed"):
        with products.CubeWriter(path, NX, NY, NCHAN, **_ARGS) as cw:
            cw.write_plane(0, _cube()[0] + 1)
            assert len([p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]) == 1
            raise RuntimeError("imaging failed")
    with pytest.raises(KeyboardInterrupt):  # even a BaseException cleans up
        with products.CubeWriter(path, NX, NY, NCHAN, **_ARGS) as cw:
            raise KeyboardInterrupt
    # a clean exit before all planes are written is an error too
    with pytest.raises(ValueError, match="only 2 of 5 planes"):
        with products.CubeWriter(path, NX, NY, NCHAN, **_ARGS) as cw:
            cw.write_plane(0, _cube()[0])
            cw.write_plane(1, _cube()[1])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.fits"]


def test_cube_writer_failure_while_completing_keeps_existing_target(tmp_path, monkeypatch):
    path = _write(tmp_path / "c.fits", _cube())
    before = path.read_bytes()

    def failing(total: int) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(products, "_encode_checksum", failing)
    with pytest.raises(OSError, match="disk full"):
        _stream(path, _cube() + 1)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.fits"]


def test_cube_writer_replaces_target_with_plain_permissions(tmp_path):
    _write(tmp_path / "c.fits", np.zeros((2, NX, NY)))
    path = _stream(tmp_path / "c.fits", _cube())
    np.testing.assert_array_equal(read_image(path)[0], _cube().astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.fits"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_cube_writer_bounded_memory(tmp_path):
    import tracemalloc

    n, nchan = 256, 64
    plane = np.random.default_rng(2).normal(size=(n, n)).astype(np.float32)
    plane_bytes = plane.nbytes  # 256 KiB; the cube is 16 MiB
    tracemalloc.start()
    try:
        with products.CubeWriter(tmp_path / "big.fits", n, n, nchan, **_ARGS) as cw:
            for k in range(nchan):
                cw.write_plane(k, plane, beam=Beam(1.0 + k / 100, 0.8, 0.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * plane_bytes, f"peak {peak / plane_bytes:.1f} planes"
    _assert_valid(tmp_path / "big.fits")
    with fits.open(tmp_path / "big.fits") as hdul:
        assert hdul[0].data.shape == (1, nchan, n, n)
        np.testing.assert_array_equal(hdul[0].data[0, 63], plane.T)
        assert len(hdul["BEAMS"].data) == nchan


def test_cube_writer_rejects_bad_use(tmp_path):
    with pytest.raises(ValueError):
        products.CubeWriter(tmp_path / "x.fits", NX, NY, NCHAN, **{**_ARGS, "cell_arcsec": 0.0})
    with pytest.raises(ValueError):
        products.CubeWriter(tmp_path / "x.fits", NX, 0, NCHAN, **_ARGS)
    with pytest.raises(ValueError, match="beams given"):
        products.CubeWriter(tmp_path / "x.fits", NX, NY, NCHAN, beam=[Beam(1, 1, 0)] * 2, **_ARGS)
    cw = products.CubeWriter(tmp_path / "x.fits", NX, NY, NCHAN, **_ARGS)
    with pytest.raises(RuntimeError):
        cw.write_plane(0, _cube()[0])  # outside the with block
    assert list(tmp_path.iterdir()) == []

    cases = [
        lambda cw: cw.write_plane(0, _cube()[0].T),  # wrong shape (ny, nx)
        lambda cw: (cw.write_plane(0, _cube()[0], beam=Beam(1, 1, 0)), cw.write_plane(1, _cube()[1])),
        lambda cw: (cw.write_plane(0, _cube()[0]), cw.write_plane(1, _cube()[1], beam=Beam(1, 1, 0))),
        lambda cw: (cw.set_beams(Beam(1, 1, 0)), cw.write_plane(0, _cube()[0], beam=Beam(1, 1, 0))),
        lambda cw: (cw.write_plane(0, _cube()[0], beam=Beam(1, 1, 0)), cw.set_beams(Beam(1, 1, 0))),
    ]
    for bad in cases:
        with pytest.raises(ValueError):
            with products.CubeWriter(tmp_path / "x.fits", NX, NY, NCHAN, **_ARGS) as cw:
                bad(cw)
    with pytest.raises(TypeError):
        with products.CubeWriter(tmp_path / "x.fits", NX, NY, NCHAN, **_ARGS) as cw:
            cw.write_plane(0, np.zeros((NX, NY), dtype=complex))
    assert list(tmp_path.iterdir()) == []


def test_interrupted_atomic_write_leaves_nothing(tmp_path):
    from almarules.engine.io import write_bytes_atomic

    def interrupted(fh):
        fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(tmp_path / "a.json", interrupted)
    assert list(tmp_path.iterdir()) == []


# ALMA's array reference position, ITRF (m), as CASA 6.7 exportfits writes it (OBSGEO-X/Y/Z)
ALMA_XYZ = (2225142.180269, -5440307.370349, -2481029.851874)


def test_observation_keywords_open_without_fixes(tmp_path):
    """DATE-OBS/MJD-OBS/TIMESYS from MJD seconds, OBSGEO-*, OBSRA/OBSDEC, VELREF; astropy's WCS
    reads them and changes nothing (no FITSFixedWarning)."""
    from astropy.coordinates import EarthLocation
    from astropy.wcs import WCS, FITSFixedWarning

    # MJD 60476 + 9655.144 s = 2024-06-15 02:40:55.144 UTC (60476 is 2024-06-15: 60000 is 2023-02-25)
    obs = products.Observation(date_obs_mjd_s=60476 * 86400.0 + 9655.144, observer="Jane Doe", obsgeo_m=ALMA_XYZ)
    for path, writer in ((tmp_path / "i.fits", "image"), (tmp_path / "c.fits", "cube")):
        if writer == "image":
            _write(path, _cube(), observation=obs, telescope="ALMA", restfreq_hz=230.538e9)
        else:
            with products.CubeWriter(path, NX, NY, NCHAN, observation=obs, telescope="ALMA", restfreq_hz=230.538e9,
                                     **_ARGS) as cw:
                for k in range(NCHAN):
                    cw.write_plane(k, _cube()[k])
        h = fits.getheader(path)
        assert h["DATE-OBS"] == "2024-06-15T02:40:55.144000" and h["TIMESYS"] == "UTC"
        assert h["MJD-OBS"] == pytest.approx(60476 + 9655.144 / 86400, abs=1e-11)
        assert (h["OBSERVER"], h["TELESCOP"], h["INSTRUME"]) == ("Jane Doe", "ALMA", "ALMA")
        assert (h["OBSRA"], h["OBSDEC"], h["VELREF"], h["SPECSYS"]) == (RA, DEC, 257, "LSRK")
        with warnings.catch_warnings():
            warnings.simplefilter("error", FITSFixedWarning)
            w = WCS(h)
        assert list(w.wcs.obsgeo[:3]) == pytest.approx(ALMA_XYZ, abs=1e-6)
        # geodetic L/B agree with astropy's exact WGS84 conversion; H within wcslib's few metres
        lon, lat, height = EarthLocation.from_geocentric(*ALMA_XYZ, unit="m").to_geodetic("WGS84")
        assert h["OBSGEO-L"] == pytest.approx(lon.deg, abs=1e-6) and h["OBSGEO-B"] == pytest.approx(lat.deg, abs=1e-4)
        assert abs(h["OBSGEO-H"] - height.to_value("m")) < 5
        assert w.wcs.restfrq == 230.538e9 and w.wcs.specsys == "LSRK"


@pytest.mark.parametrize("xyz", [(2225142.180269, -5440307.370349, -2481029.851874),  # ALMA (alma_sim)
                                 (-1601185.365, -5041977.547, 3554875.87)])  # VLA (ngc5921)
def test_geodetic_obsgeo_is_what_wcslib_derives(xyz):
    """OBSGEO-L/B/H agree with wcslib's own obsfix (astropy.wcs), so readers change nothing."""
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    from almarules.engine.products.fits import _wcslib_geodetic

    probe = fits.Header()
    probe["NAXIS"] = 2
    probe["CTYPE1"], probe["CTYPE2"] = "RA---SIN", "DEC--SIN"
    for axis, v in zip("XYZ", xyz, strict=True):
        probe[f"OBSGEO-{axis}"] = v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        want = WCS(probe).wcs.obsgeo[3:]
    got = _wcslib_geodetic(xyz)
    np.testing.assert_allclose(got[:2], want[:2], rtol=0, atol=1e-9)
    assert abs(got[2] - want[2]) < 1e-6


def test_phase_centres_go_to_icrs_by_the_iau2000_frame_bias():
    """J2000 -> ICRS is the IAU 2000 frame bias (erfa.bp00's rb, independent of casacore), as CASA
    converts; astropy's FK5 frame is the FK5 catalogue's and sits ~20 mas away, so it is not used."""
    import math

    import erfa

    from almarules.engine.stages.imaging.writer import to_icrs

    rb = erfa.bp00(2451545.0, 0.0)[0]
    for ra, dec in ((240.0, -25.0), (10.0, 80.0), (359.9, -89.0)):
        a, d = math.radians(ra), math.radians(dec)
        w = rb.T @ np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])
        want = (math.degrees(math.atan2(w[1], w[0])) % 360.0, math.degrees(math.asin(w[2])))
        got = to_icrs(ra, dec, "J2000")
        assert abs(got[0] - want[0]) * math.cos(d) < 1e-10 and abs(got[1] - want[1]) < 1e-10
        assert abs(got[0] - ra) * math.cos(d) > 1e-6  # the bias (~10-20 mas) is applied
    assert to_icrs(12.0, 34.0, "ICRS") == (12.0, 34.0)
    assert to_icrs(12.0, 34.0, "AZEL") == (12.0, 34.0)  # needs a time and place: left as it is
