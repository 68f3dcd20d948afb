"""crosssell: "frequently bought together" and cross-sell recommendations for Django shops."""

__version__ = "0.1.0"
