"""Stage 2, training: a RunConfig in, a run folder out (config, methods, trainer, runs, estimate, sweep)."""
