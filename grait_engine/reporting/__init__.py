"""Job reports people can look at: load a finished job folder, draw its figures, render them.

Torch-free (the service imports it): ``data`` reads the job folder, ``plots`` draws one
matplotlib ``Figure`` per view (each for one or more jobs, overlaid), ``render`` turns a
figure into PNG bytes or SVG text, and ``files`` writes the PNGs next to ``report.md``.
"""
