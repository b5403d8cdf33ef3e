"""Quantities derived from solutions: interface tractions, J-integral, probes, closed forms."""
