"""The HTTP layer: routers, dependencies, problem responses (FastAPI; the worker never imports it)."""
