"""search-service: the full-text product index (search).

A read model of the catalog, kept current from `product.updated`: typo-tolerant search with
filters, a category facet and cursor paging.
"""
