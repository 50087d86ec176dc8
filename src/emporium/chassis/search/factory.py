"""Pick the search index a URL names: `tantivy://<dir>` (embedded) or an Elasticsearch
cluster (`http://`, `https://`, or `elasticsearch://host:port`, which means plain http)."""

from __future__ import annotations

from urllib.parse import urlsplit

from emporium.chassis.config import url_path
from emporium.chassis.search.base import SearchIndex


def open_search(url: str, index_name: str = "products") -> SearchIndex:
    """A search index for `url`; nothing is opened or connected until first use.

    `index_name` names the Elasticsearch index; a Tantivy index is its directory.
    """
    scheme = urlsplit(url).scheme
    if scheme == "tantivy":
        from emporium.chassis.search.tantivy_index import TantivyIndex

        return TantivyIndex(url_path(url))
    if scheme in ("http", "https", "elasticsearch"):
        from emporium.chassis.search.elastic import ElasticsearchIndex

        http_url = "http" + url[len("elasticsearch") :] if scheme == "elasticsearch" else url
        return ElasticsearchIndex(http_url, index_name)
    raise ValueError(
        f"unsupported search URL scheme {scheme!r} in {url!r}; "
        "expected tantivy, http, https or elasticsearch"
    )
