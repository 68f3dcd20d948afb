"""The minimal shop's own catalog: crosssell reads it through CROSSSELL_PRODUCT_FIELDS."""
