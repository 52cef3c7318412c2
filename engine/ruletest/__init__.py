"""Rule tests (*.test.yaml) and their coverage. Imports: dsl, engine.io, engine.facts, engine.ms, engine.evaluate."""
