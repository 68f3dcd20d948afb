"""crosssell: "frequently bought together" and cross-sell recommendations for Django shops."""

__version__ = "0.2.0"
