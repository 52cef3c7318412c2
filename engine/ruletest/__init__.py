"""Rule tests (*.test.yaml) and their coverage, on partial facts or over a corpus. Imports: dsl, engine.io, engine.facts, engine.ms, engine.corpus, engine.evaluate, engine.columnar."""
