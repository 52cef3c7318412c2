"""The interpreter: compile, evaluate, values, world, decisions, explain, and the front (api). Imports: dsl, engine.io, engine.facts, engine.ms."""
