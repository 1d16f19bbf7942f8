"""Datasets: streaming upload (size cap, validation, hashing) into the artifact store."""
