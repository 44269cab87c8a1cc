"""The on-vehicle daemon's parts (`edgesift run`); they are wired together in agent/app.py."""
