"""Dry-run plans: the Plan model and builder, corpus mode, rule diffs; renderers in plan.render. Imports: dsl, engine.io, engine.facts, engine.ms, engine.evaluate, engine.columnar."""
