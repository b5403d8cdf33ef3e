"""The old import path of the case loader, for the tests edited on other branches
(tests/test_shipped_cases.py, tests/test_parallel.py); import from `solver.case` instead.
The schema itself is split over solver/case/ (see its __init__)."""

from solver.case.loading import load_case, load_case_text

__all__ = ["load_case", "load_case_text"]
