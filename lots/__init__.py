"""Products, cell banks, lots, vials, QC and release: the manufacturing side of celltrail."""
