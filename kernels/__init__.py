"""Numeric kernels (gridding, deconvolution, calibration); filled by later issues."""
