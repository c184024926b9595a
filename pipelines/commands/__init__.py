"""The commands that are not stages: `mlstrategy init` and `mlstrategy relabel`."""
