"""Django <-> engine: record and import purchases, extract, build, publish and serve.

Tasks, views, template tags, the admin and the commands call these functions and nothing deeper.
"""
