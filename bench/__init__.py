"""The throughput benchmark of the STAC source against its peers; see bench/README.md."""
