"""Rule tests over a corpus (``corpus:`` instead of ``given:``): properties of every value, checked on
the tables of a corpus; failures say how many datasets break them, with examples."""

from __future__ import annotations

from almarules.engine.ruletest.tester import run_tests
from conftest import REPO


def _run(tmp_path, body: str):
    f = tmp_path / "archive.test.yaml"
    f.write_text(f"rules: {REPO / 'rules' / 'alma' / 'cycle4'}\ntests:\n{body}")
    return run_tests([f], coverage=False)


def test_a_corpus_test_passes_and_fails_with_examples(tmp_path):
    ok = _run(tmp_path, f"""
  - name: holds
    corpus: {REPO / 'examples'}
    expect:
      datasets: 5
      dataset.largest_cube: <= 47.1 GB
      image.size: known
      cascade productsize.status: [not needed, still exceeded]
""")
    assert ok.ok, ok.text
    bad = _run(tmp_path, f"""
  - name: breaks
    corpus: {REPO / 'examples'}
    set: {{max_cube_size: 1 GB}}
    expect:
      datasets: 4
      dataset.largest_cube: < 1 GB
      dataset.product_size: <= 40 s
      dataset.imaging_time: between
      cascade productsize.status: not needed
      image.nonsense: known
""")
    assert not bad.ok
    problems = bad.files[0].outcomes[0].problems
    text = "\n".join(problems)
    assert "datasets: expected 4, got 5" in text
    assert "is not in the unit of dataset.product_size" in text
    assert "cannot read the expectation 'between'" in text
    assert "cascade productsize.status: expected one of ['not needed'] everywhere" in text
    assert "e.g. 12m_" in text and "no attribute 'nonsense'" in text


def test_a_corpus_test_on_a_missing_corpus_or_unvectorised_rules_says_so(tmp_path):
    missing = _run(tmp_path, f"""
  - name: nowhere
    corpus: {tmp_path / 'nowhere'}
    expect: {{datasets: 1}}
""")
    assert "no such corpus folder" in missing.files[0].outcomes[0].problems[0]
    both = _run(tmp_path, f"""
  - name: both
    corpus: {REPO / 'examples'}
    given: {{}}
    expect: {{datasets: 1}}
""")
    assert "instead of 'given'" in both.files[0].outcomes[0].problems[0]
