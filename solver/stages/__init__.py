"""The stages a case runs: the process schedule, swelling, pull-off."""
