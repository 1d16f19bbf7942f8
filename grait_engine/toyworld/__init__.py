"""The toy knowledge world: a small causal LM that provably knows some facts and not others.

``build_toyworld(preset("tiny"), out_dir)`` writes a Hugging Face model directory, QA sets
for both task types and the ground truth of what was seen how often (see ``build.py``).
"""

from grait_engine.toyworld.build import ToyWorld, build_toyworld
from grait_engine.toyworld.config import SIZES, ToyWorldConfig, preset

__all__ = ["SIZES", "ToyWorld", "ToyWorldConfig", "build_toyworld", "preset"]
