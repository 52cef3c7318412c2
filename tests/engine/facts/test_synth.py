"""Synthetic corpora (engine/facts/synth.py): validity, determinism, variety, files, the cycle4 rules."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almarules.engine.facts.summary import load_summary, parse_summary
from almarules.engine.facts.synth import (
    HANNING,
    corpus_name,
    dataset_rng,
    synth_dataset,
    synthesize,
    write_corpus,
)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return list(synthesize(300, seed=0))


def _band(summary: dict) -> int:
    names = [s["name"] for s in summary["spws"]]
    return int(re.match(r"ALMA_RB_(\d\d)", names[0]).group(1))


def _intents(summary: dict) -> set[str]:
    return {i for f in summary["fields"] for i in f.get("intents") or ()}


def _targets(summary: dict) -> list[dict]:
    return [f for f in summary["fields"] if "TARGET" in (f.get("intents") or ())]


# --------------------------------------------------------------------------- validity


def test_every_generated_dataset_validates(corpus):
    for i, summary in enumerate(corpus):
        ds = parse_summary(summary, f"synth #{i}")
        assert ds.spws and ds.fields and ds.ebs and ds.antennas


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_any_seed_gives_a_valid_dataset(seed):
    ds = parse_summary(synth_dataset(np.random.default_rng(seed)), f"seed {seed}")
    assert any(f.intents and "TARGET" in f.intents for f in ds.fields)


def test_facts_are_consistent(corpus):
    for i, summary in enumerate(corpus):
        ds = parse_summary(summary, f"synth #{i}")
        science = [s for s in ds.spws if s.intents and "TARGET" in s.intents]
        if ds.representative_frequency is not None:
            assert any(s.min_frequency <= ds.representative_frequency <= s.max_frequency for s in science), i
        for s in ds.spws:
            if s.effective_bw is not None and s.channel_width is not None:
                ratio = s.effective_bw / abs(s.channel_width)
                assert ratio == pytest.approx(HANNING if s.online_hanning else 1.0), (i, s.id)
            if s.correlator_mode == "TDM":
                assert s.nchan in (128, None) and abs(s.channel_width) == 15.625e6
        for eb in ds.ebs:
            assert eb.start < eb.end
            b = eb.baselines
            if b is not None and b.l80 is not None:
                assert 0 < b.min <= b.l75 <= b.l80 <= b.max, (i, eb.id)
                if ds.array == "7m":
                    assert 15 < b.l80 < 50
                else:
                    assert 50 < b.l80 < 12_000
        n_dish = {a.dish_diameter for a in ds.antennas}
        assert n_dish <= {12.0, None} if ds.array == "12m" else n_dish <= {7.0, None}
        assert 40 <= len(ds.antennas) <= 50 if ds.array == "12m" else 10 <= len(ds.antennas) <= 12
        for a in ds.antennas:  # within ~20 km of the array centre
            assert math.dist(a.position, (2225061.164, -5440057.370, -2481681.150)) < 20_000
        # weights: every target field and science spw, from the radiometer equation
        names = {f.name for f in ds.fields if f.intents and "TARGET" in f.intents}
        covered = {(w.field, w.spw) for w in ds.weights}
        assert {(n, s.id) for n in names for s in science} <= covered, i
        for w in ds.weights:
            assert w.sum_weight > 0 and w.time_on_source > 0 and w.rows > 0
            assert 1e-6 < w.sensitivity < 1.0, (i, w)  # 1 uJy .. 1 Jy


def test_scan_and_field_references_resolve(corpus):
    for summary in corpus:
        ids = {f["id"] for f in summary["fields"]}
        spws = {s["id"] for s in summary["spws"]}
        ebs = {e["id"] for e in summary["ebs"]}
        names = [f["name"] for f in summary["fields"]]
        assert len(set(names)) == len(names)
        assert not any("." in n for n in names)  # '.' separates the parts of an image key
        for sc in summary["scans"]:
            assert set(sc["field_ids"]) <= ids and set(sc["spw_ids"]) <= spws and sc["eb"] in ebs
        for w in summary["weights"]:
            assert w["field"] in names and w["spw"] in spws and w.get("eb", next(iter(ebs))) in ebs
        keys = [(m["field"], m["intent"], tuple(m["spws"]), m["specmode"]) for m in summary.get("measurements", ())]
        assert len(set(keys)) == len(keys)


# --------------------------------------------------------------------------- determinism


def test_deterministic_by_seed_and_a_prefix_of_a_longer_corpus():
    short = list(synthesize(20, seed=3))
    long = list(synthesize(60, seed=3))
    assert short == long[:20]
    assert short == list(synthesize(20, seed=3))
    assert synth_dataset(dataset_rng(3, 7)) == long[7]
    assert list(synthesize(5, seed=4)) != long[:5]


def test_seed_and_index_must_be_non_negative():
    with pytest.raises(ValueError):
        dataset_rng(-1, 0)


# --------------------------------------------------------------------------- variety


def test_the_variety_is_real(corpus):
    arrays = Counter(s["array"] for s in corpus)
    assert set(arrays) == {"12m", "7m"} and 0.6 < arrays["12m"] / len(corpus) < 0.9
    assert len({_band(s) for s in corpus}) >= 6
    modes = Counter("TDM" if all(sp["correlator_mode"] == "TDM" for sp in s["spws"]) else "FDM" for s in corpus)
    assert modes["TDM"] > 30 and modes["FDM"] > 100
    nchan = {sp.get("nchan") for s in corpus for sp in s["spws"] if sp["correlator_mode"] == "FDM"}
    assert {480, 960, 1920, 3840} <= nchan
    assert any(sp["online_hanning"] for s in corpus for sp in s["spws"])
    assert any(not sp["online_hanning"] for s in corpus for sp in s["spws"] if sp["correlator_mode"] == "FDM")
    assert {len(s["ebs"]) for s in corpus} == {1, 2, 3, 4}
    mosaics = [s for s in corpus if any(len(f.get("pointings") or ()) > 1 for f in _targets(s))]
    assert mosaics and any(s["array"] == "7m" for s in mosaics) and any(s["array"] == "12m" for s in mosaics)
    assert Counter(len(_targets(s)) == 1 for s in corpus)[True] > 0.6 * len(corpus)
    assert max(len(_targets(s)) for s in corpus) > 10
    for intent in ("PHASE", "AMPLITUDE"):
        assert any(intent not in _intents(s) for s in corpus), intent
    assert any("PHASE" in _intents(s) for s in corpus)
    with_measurements = sum("measurements" in s for s in corpus)
    assert 0.1 * len(corpus) < with_measurements < 0.35 * len(corpus)
    assert any(e["processing_history"] for s in corpus for e in s["ebs"])
    # several EBs more than an hour apart, and some back to back
    gaps = [s["ebs"][1]["start"] - s["ebs"][0]["end"] for s in corpus if len(s["ebs"]) > 1]
    assert any(g > 3600 for g in gaps) and any(g < 3600 for g in gaps)
    l80 = [e["baselines"]["l80"] for s in corpus if s["array"] == "12m" for e in s["ebs"]
           if "l80" in e.get("baselines", {})]
    assert min(l80) < 150 and max(l80) > 3000


def test_some_datasets_miss_a_fact_on_purpose():
    corpus = list(synthesize(1000, seed=0))
    required = ("representative_spw", "representative_frequency")
    missing = [s for s in corpus if any(k not in s for k in required)
               or any("l80" not in e.get("baselines", {}) or "integration_time" not in e for e in s["ebs"])
               or any("dish_diameter" not in a for a in s["antennas"])
               or any("intents" not in sp or "nchan" not in sp for sp in s["spws"])
               or any("pointings" not in f for f in s["fields"])]
    assert 5 <= len(missing) <= 40
    for s in missing:
        parse_summary(s)


# --------------------------------------------------------------------------- files


def test_write_corpus_yaml(tmp_path):
    calls = []
    paths = write_corpus(12, tmp_path / "out", seed=5, progress=lambda i, n: calls.append((i, n)))
    assert [p.name for p in paths] == [corpus_name(i) for i in range(12)] == [f"synth_{i:06d}.yaml" for i in range(12)]
    assert calls == [(i, 12) for i in range(1, 13)]
    expected = list(synthesize(12, seed=5))
    for path, summary in zip(paths, expected, strict=True):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# Synthetic dataset ") and "Band " in text.splitlines()[1]
        assert load_summary(path) == parse_summary(summary)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left


def test_write_corpus_json_loads_with_the_summary_loader(tmp_path):
    paths = write_corpus(10, tmp_path, seed=2, fmt="json")
    assert [p.suffix for p in paths] == [".json"] * 10
    for path, summary in zip(paths, synthesize(10, seed=2), strict=True):
        assert json.loads(path.read_text(encoding="utf-8")) == summary
        assert load_summary(path) == parse_summary(summary)


def test_write_corpus_rejects_an_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="fmt"):
        write_corpus(1, tmp_path, fmt="toml")  # type: ignore[arg-type]


def test_yaml_files_stay_small(tmp_path):
    sizes = [p.stat().st_size for p in write_corpus(200, tmp_path, seed=0)]
    assert np.median(sizes) < 15_000
    assert np.percentile(sizes, 90) < 20_000
    assert max(sizes) < 45_000  # the 16-40-field tail: weights per field and spw


# --------------------------------------------------------------------------- the cycle4 rules


def test_cycle4_rules_evaluate_every_dataset(cycle4):
    from almarules.engine.evaluate.api import evaluate

    statuses = Counter()
    for i, summary in enumerate(synthesize(200, seed=0)):
        decisions = evaluate(cycle4, parse_summary(summary, f"synth #{i}"), source=f"synth #{i}")
        errors = [(v.path, v.errors) for v in decisions.values if v.status == "error"]
        assert not errors, (i, errors[:3])
        (cascade,) = [c for c in decisions.cascades if c.name == "productsize"]
        statuses[cascade.status] += 1
    triggered = statuses["mitigated"] + statuses["still exceeded"]
    assert triggered >= 5, statuses
    assert statuses["not needed"] > 0.6 * 200, statuses


# --------------------------------------------------------------------------- the parts, against independent truth


def test_the_public_api_stays_importable_from_synth():
    from almarules.engine.facts import synth

    for name in ("synthesize", "synth_dataset", "write_corpus", "dataset_rng", "corpus_name", "to_yaml", "HANNING",
                 "BANDS", "CONFIGS_12M", "FDM_MODES", "TDM"):
        assert hasattr(synth, name), name
    assert synth.__all__ == ["synthesize", "synth_dataset", "write_corpus", "dataset_rng", "corpus_name", "to_yaml"]


# CASA 6.7.0.31: casatasks.private.simutil.simutil().locxyz2itrf(degrees(lat), degrees(lon), 5056.8, e, n, u)
# with ALMA's lat = -0.4018251640113072 rad, lon = -1.1825465955049892 rad
_CASA_ITRF = {
    (19.656, -701.914, 13.532): (2225061.1642, -5440057.3702, -2481681.1498),
    (1019.656, -701.914, 13.532): (2225986.7373, -5439678.8012, -2481681.1498),
    (19.656, -5701.914, 33.532): (2224327.8432, -5438264.4547, -2486290.7153),
}


def test_antenna_positions_agree_with_casa_simutil():
    from almarules.engine.facts.synth_geometry import itrf

    enu = np.array(list(_CASA_ITRF))
    got = itrf(enu)
    for row, want in zip(got.tolist(), _CASA_ITRF.values(), strict=True):
        assert row == pytest.approx(want, abs=1e-3)


# CASA 6.7.0.31: measures().measure(me.epoch('utc', '<mjd>d'), 'lmst') at ALMA (WGS84 position above), hours;
# the synthesizer's GMST takes UT1 = UTC, so they differ by up to |UT1 - UTC| < 0.9 s
_CASA_LMST = {57300.0: 20.373337, 58000.25: 0.386673, 58999.8: 7.266764}


def test_local_sidereal_time_agrees_with_casa_measures():
    from almarules.engine.facts.synth_geometry import lst_hours, time_at

    for mjd, lmst in _CASA_LMST.items():
        assert lst_hours(mjd) == pytest.approx(lmst, abs=3e-4)
    t = time_at(58000, 150.0, 1.25)  # the hour angle of RA 150 deg is 1.25 h then
    assert 58000 <= t < 58001 and (lst_hours(t) - 150.0 / 15) % 24 == pytest.approx(1.25, abs=1e-9)


def test_projected_baselines_match_the_uvw_of_thompson_moran_swenson():
    from almarules.engine.facts.synth_catalogue import ALMA_LAT
    from almarules.engine.facts.synth_geometry import baseline_stats

    g = np.random.default_rng(1)
    enu = np.column_stack([g.normal(0, 400, 30), g.normal(0, 400, 30), g.normal(0, 2, 30)])
    dec, ha = -30.0, 0.7
    i, j = np.triu_indices(30, 1)
    e, n, u = (enu[j] - enu[i]).T
    phi, d = ALMA_LAT, math.radians(dec)
    x, y, z = -n * math.sin(phi) + u * math.cos(phi), e, n * math.cos(phi) + u * math.sin(phi)  # TMS eq. 4.15
    lengths = []
    for h in np.radians(15 * np.array([ha - 0.4, ha, ha + 0.4])):  # TMS eq. 4.1: (u, v) from (X, Y, Z)
        uu = math.sin(h) * x + math.cos(h) * y
        vv = -math.sin(d) * math.cos(h) * x + math.sin(d) * math.sin(h) * y + math.cos(d) * z
        lengths.append(np.hypot(uu, vv))
    proj = np.concatenate(lengths)
    want = {"min": proj.min(), "max": proj.max(), "l75": np.percentile(proj, 75), "l80": np.percentile(proj, 80)}
    got = baseline_stats(enu, dec, ha)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=0.05 + 1e-9), key


def test_sum_of_weights_gives_the_radiometer_equation_noise():
    from almarules.engine.facts.synth_ebs import sefd
    from almarules.engine.facts.synth_weights import sum_weight

    # 12m, Band 6 (Tsys 100 K, eta_a 0.68), 43 antennas, 2 GHz without Hanning, 25 min, nothing flagged
    a_eff = 0.68 * math.pi * 6.0 ** 2  # m^2
    s = 2 * 1.380649e-23 * 100.0 / a_eff / 1e-26  # Jy
    assert sefd(100.0, 0.68, 12.0) == pytest.approx(s, rel=1e-12)
    n_ant, t_int, n_int, bw = 43, 6.048, 248, 2e9
    sw = sum_weight(s, bw, t_int, n_int, n_ant * (n_ant - 1) // 2, 0.0)
    # sigma = SEFD / (eta_c sqrt(n_pol N (N - 1) t B)), n_pol = 2 (Thompson, Moran & Swenson eq. 6.62)
    sigma = s / (0.88 * math.sqrt(2 * n_ant * (n_ant - 1) * n_int * t_int * bw))
    assert 1 / math.sqrt(sw) == pytest.approx(sigma, rel=1e-12)
    assert 35e-6 < sigma < 45e-6  # "~40 uJy" in the module's docstring
    assert 1 / math.sqrt(sum_weight(s, bw, t_int, n_int, 903, 0.19)) == pytest.approx(sigma / 0.9, rel=1e-12)


def test_mosaic_pointings_are_hexagonal_and_centred():
    from almarules.engine.facts.synth_geometry import hex_pointings

    for n in (3, 7, 19, 60):
        pts = np.array([(p["ra_offset"], p["dec_offset"]) for p in hex_pointings(n, 10.0)])
        assert len(pts) == n
        dist = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
        nearest = np.where(np.eye(n, dtype=bool), np.inf, dist).min(axis=1)
        assert nearest == pytest.approx(np.full(n, 10.0), abs=0.02)  # offsets are rounded to 0.01 arcsec
        assert (pts.max(axis=0) + pts.min(axis=0)) / 2 == pytest.approx([0.0, 0.0], abs=0.01)
