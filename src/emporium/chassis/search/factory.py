"""Pick the search index a URL names: `tantivy://<dir>` (embedded), an Elasticsearch
cluster (`http://`, `https://`, or `elasticsearch://host:port`, which means plain http) or an
OpenSearch one (`opensearch://host:port`, plain http, or `opensearchs://host:port`, https)."""

from __future__ import annotations

from urllib.parse import urlsplit

from emporium.chassis.config import url_path
from emporium.chassis.search.base import SearchIndex


def open_search(url: str, index_name: str = "products") -> SearchIndex:
    """A search index for `url`; nothing is opened or connected until first use.

    `index_name` names the Elasticsearch or OpenSearch index; a Tantivy index is its
    directory. A cluster index keeps `url` as given (its `url` attribute).
    """
    scheme = urlsplit(url).scheme
    if scheme == "tantivy":
        from emporium.chassis.search.tantivy_index import TantivyIndex

        return TantivyIndex(url_path(url))
    if scheme in ("http", "https", "elasticsearch"):
        from emporium.chassis.search.elastic import ElasticsearchIndex

        return ElasticsearchIndex(url, index_name)
    if scheme in ("opensearch", "opensearchs"):
        from emporium.chassis.search.opensearch import OpenSearchIndex

        return OpenSearchIndex(url, index_name)
    raise ValueError(
        f"unsupported search URL scheme {scheme!r} in {url!r}; "
        "expected tantivy, http, https, elasticsearch, opensearch or opensearchs"
    )
