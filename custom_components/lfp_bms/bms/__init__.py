"""Pure-Python protocol library for PACE-family LiFePO4 BMSs (no Home Assistant imports)."""
