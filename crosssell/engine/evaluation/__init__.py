"""Offline evaluation of the engine's strategies: FBT-v1, PERSONAL-MS and CART-v1 (PROTOCOL.md).

Reads the two-file interchange format directly; runs our strategies and the peers on the same
split, so their numbers can be put side by side with PROTOCOL.md's.
"""

from crosssell.engine.evaluation.fbt import FBTSplit, evaluate_fbt, fbt_split
from crosssell.engine.evaluation.personal import PersonalSplit, evaluate_personal, personal_split
from crosssell.engine.evaluation.runner import markdown_table, run_protocol, to_json

__all__ = [
    "FBTSplit",
    "PersonalSplit",
    "evaluate_fbt",
    "evaluate_personal",
    "fbt_split",
    "markdown_table",
    "personal_split",
    "run_protocol",
    "to_json",
]
