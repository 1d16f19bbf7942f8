"""Persistence: engine and sessions, typed models, repositories, migrations.

Free of FastAPI: the worker imports this package.
"""
