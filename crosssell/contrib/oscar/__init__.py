"""crosssell in a django-oscar shop: Oscar's catalogue, prices, stock, categories, variants,
basket, orders and hand-made recommendations, read as Oscar means them.

See the README's section "Installing into django-oscar" for the lines a shop adds.
"""
