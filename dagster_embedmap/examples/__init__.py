"""Example code locations (loaded by the repository's workspace.yaml)."""
