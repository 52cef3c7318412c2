"""Dataset facts: the pydantic models, their JSON Schema, summary loading, synthetic corpora. Imports: dsl, engine.io."""
