"""Two ways an evaluation avoids computing a value again, each checked against not avoiding it.

- After a cascade action only the values that can read what it changed are forgotten
  (engine/evaluate/stale.py), not every value.
- A value alike for the images of one spw (or one field and spw) is computed once and reused by
  the others, with their own provenance (engine/evaluate/sharing.py).

Both must leave every value, provenance, cascade record, stage, warning and coverage exactly as
computing everything again gives, with the default limits and with tight ones (so that the
product-size cascade applies its steps: sets, parameters, keeps).
"""

from __future__ import annotations

import pytest

from almarules.engine.evaluate import compile_program, sharing, stale
from almarules.engine.evaluate.api import load_facts, load_program
from almarules.engine.evaluate.stale import Stale
from almarules.engine.facts.model import Dataset
from almarules.engine.facts.synth import synthesize

from conftest import EXAMPLES, REPO
from evaluation_snapshot import everything, input_text

RULE_SETS = ["cycle4", "current", "cycle5"]
DATASETS = [Dataset.model_validate(s) for s in synthesize(30, seed=11)]


def _tight(program) -> dict[str, float]:
    return {k: program.params[k] / 50 for k in ("max_cube_size", "max_product_size", "max_cube_limit")
            if k in program.params}


@pytest.mark.parametrize("rules", RULE_SETS)
def test_forgetting_only_stale_values_and_sharing_change_nothing(rules, monkeypatch):
    fast = load_program([REPO / "rules" / "alma" / rules])
    monkeypatch.setattr(stale.StaleValues, "of", lambda self, changed: Stale(True, {}, ()))
    monkeypatch.setattr(sharing.Keys, "key_attrs", lambda self, kind, attr: None)
    monkeypatch.setattr(compile_program, "shared", lambda rules, kind: False)
    slow = load_program([REPO / "rules" / "alma" / rules])
    assert not slow.names.keyed and fast.names.keyed and not slow.names.shared and fast.names.shared
    datasets = DATASETS + [load_facts(p) for p in EXAMPLES] + [Dataset()]
    steps = 0
    for params in ({}, _tight(fast)):
        for i, d in enumerate(datasets):
            ev = fast.run(d, dict(params))
            steps += sum(len(c.steps) for c in ev.cascades)
            assert everything(ev) == everything(slow.run(d, dict(params))), (rules, params, i)
    assert steps > len(datasets)  # the cascades did apply steps


def test_which_values_a_change_makes_stale(cycle4):
    of = cycle4.stale.of
    nbin = of(frozenset({"nbin"}))
    assert not nbin.remake
    assert {"nbin", "size", "product_size"} <= set(nbin.attrs["image"]) and "frequency" not in nbin.attrs["image"]
    assert {"product_size", "largest_cube"} <= set(nbin.attrs["dataset"])
    assert "antenna" not in nbin.attrs  # nothing of an antenna reads a channel binning
    dropped = of(frozenset({"images"}))
    assert "images" in dropped.attrs["dataset"] and dropped.refiltered == ("image",)
    assert "frequency" not in dropped.attrs.get("image", ())
    assert of(frozenset({"spws"})).remake  # the images are made from the spws: made anew


def test_which_values_are_shared_and_by_what(cycle4):
    keyed = {target: attrs for target, (_, attrs) in cycle4.names.keyed.items()}
    assert keyed[("image", "frequency")] == ("spws",)
    assert keyed[("image", "imsize_exact")] == ("field", "spws")
    assert ("image", "size") not in keyed  # it reads everything that tells images apart
    assert ("image", "qa_colour") not in keyed  # it reads a score of the image
    assert ("image", "pblimit") in cycle4.names.shared  # it does not read the image at all


def test_a_shared_value_has_the_provenance_of_its_own_entity(cycle4):
    d = next(d for d in DATASETS if len({f.name for f in d.fields}) > 3)
    ev = cycle4.run(d)
    ev.compute_all()
    images = [i for i in ev.all_of("image") if i.created["specmode"] == "mfs" and len(i.created["spws"]) == 1]
    first, other = next((a, b) for a in images for b in images
                        if a is not b and a.created["spws"] == b.created["spws"])
    assert dict.get(other.prov, "fwhp").__class__ is tuple  # reused, not computed again
    assert ev.attr(first, "fwhp") == ev.attr(other, "fwhp")
    mine = [input_text(i) for i in other.prov["fwhp"].inputs]
    assert mine == [input_text(i).replace(first.path, other.path) for i in first.prov["fwhp"].inputs]
    assert any(x.startswith(other.path) for x in mine) and not any(x.startswith(first.path) for x in mine)


def test_a_set_attribute_stops_sharing_what_reads_it(cycle4):
    d = DATASETS[0]
    ev = cycle4.run(d)
    assert not ev.unshared
    image = ev.all_of("image")[0]
    ev.assume(f"{image.path}.cell", "0.01 arcsec")
    unshared = {target for target, (key, _) in cycle4.names.keyed.items() if key in ev.unshared}
    assert ("image", "imsize_exact") in unshared and ("image", "frequency") not in unshared


def test_a_value_set_on_one_entity_is_not_shared_with_the_others(cycle4):
    """A cascade's set (or a test's assumption) of a value alike for every image, on one image,
    stops only that value's sharing; the other images keep the value their rules give."""
    ev = cycle4.run(DATASETS[0])
    first, *others = ev.all_of("image")
    computed = ev.attr(others[0], "pblimit")
    ev.assume(f"{first.path}.pblimit", "0.5")
    shared = {target: key for target, key in cycle4.names.shared.items() if key in ev.unshared}
    assert list(shared) == [("image", "pblimit")]  # gridder, niter ... still shared
    ev.reset()
    values = {i.path: v for i, name, v in ev.compute_all() if name == "pblimit"}
    assert values[first.path] == 0.5 and all(values[o.path] == computed != 0.5 for o in others)
    assert ev.attr(others[0], "gridder") == ev.attr(first, "gridder")


def test_an_error_value_alike_for_every_entity_names_each_its_own(tmp_path):
    """A value whose rules do not name the entity is shared, but not an error value: its message
    names the entity (no rule applies here), and another entity's message names that one."""
    d = tmp_path / "rules"
    d.mkdir()
    (d / "r.rules").write_text('derive spw.bonus = 1\n    when dataset.array == "VLA"\n')
    p = load_program([d])
    assert ("spw", "bonus") in p.names.shared
    errors = {e.path: v.errors for e, a, v in p.run(DATASETS[0]).compute_all() if a == "bonus"}
    assert len(errors) > 1
    assert all(errs == {f"no rule for {path}.bonus applies"} for path, errs in errors.items())


def test_rule_text_never_becomes_python(tmp_path):
    """Rule files are data: generated code holds their strings as literals, whatever they contain."""
    d = tmp_path / "rules"
    d.mkdir()
    hostile = "x'); __import__('os').system('touch PWNED'); ('\\\" \\\\"
    (d / "r.rules").write_text(
        f'derive dataset.label = "{hostile}"\n\n'
        'derive spw.tag = if spw.nchan > 1 then "a\\"); import os #" else dataset.label\n')
    p = load_program([d])
    values = {(e.path, a): v for e, a, v in p.run(DATASETS[0]).compute_all()}
    assert values[("dataset", "label")] == "x'); __import__('os').system('touch PWNED'); ('\" \\"
    assert {v for (path, a), v in values.items() if a == "tag"} == {'a"); import os #'}
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()
