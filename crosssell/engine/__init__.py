"""The recommendation engine: integer indices and sparse matrices in, ranked lists out.

Nothing here imports Django or TensorFlow (the neural strategy lives in ``engine.neural`` and is
imported only when asked for). A test keeps it that way.
"""

from crosssell.engine.base import (
    Interactions,
    ItemContent,
    ItemRecommender,
    TopK,
    UserRecommender,
)

__all__ = ["Interactions", "ItemContent", "ItemRecommender", "TopK", "UserRecommender"]
