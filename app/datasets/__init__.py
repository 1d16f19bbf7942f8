"""Datasets: the datasets domain. Streaming upload (size cap, validation, hashing) into the
artifact store (upload, multipart, sink), create and delete (service), tenant-scoped queries
(repository)."""
