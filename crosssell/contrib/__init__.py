"""Adapters that install crosssell into other shop frameworks (settings, URLs, templates)."""
