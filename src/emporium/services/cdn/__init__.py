"""cdn-service: product images (objects).

Accepts image uploads over gRPC and serves the bytes and width renditions over its HTTP port
with ETag and Cache-Control; consumes `product.updated` to drop images of deleted products.
"""
