"""Numerics shared by every physics: Newton, step cuts, linear solves, version differences."""
