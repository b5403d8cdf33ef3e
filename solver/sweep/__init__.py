"""Parameter sweeps: plan, backends, results, plots and their command line."""
