"""Wires the packages together: config, search loop, reward, ensembles, Pareto fronts, results, CLI."""
