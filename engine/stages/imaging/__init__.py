"""The imaging stage: rule-driven images from Measurement Sets (see `stage`). Imports: everything below engine.stages."""
