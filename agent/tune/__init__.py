"""`edgesift tune`: what-if sweeps over recorded drives, budget-driven config suggestions, baselines."""
