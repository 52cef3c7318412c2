"""Plan renderers: text, markdown, HTML. Imports: engine.plan.model, engine.evaluate."""
