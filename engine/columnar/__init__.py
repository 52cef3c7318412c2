"""The vectorised evaluator: one rule program over a corpus of datasets at once, column by column. Imports: dsl, kernels, engine.io, engine.facts, engine.ms, engine.evaluate."""
