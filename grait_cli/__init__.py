"""The ``grait`` command: a dispatcher over the engine's and the service's commands.

It sits above every package (it may import all of them, lazily), so that ``grait_engine``
never imports the service and ``app`` never imports torch.
"""
