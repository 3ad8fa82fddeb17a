"""The dlt sources of this project, importable as `sources.<name>`."""
