"""Calibration stages (issue 14): flagging, reference antenna, flux models, bandpass, gains, flux scale, applycal."""
