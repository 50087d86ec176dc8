"""The storefront: server-rendered pages on the gateway's origin, built on the public API.

See docs/web.md. `web.app.create_web(api_url)` builds the pages app; `WebFirst` sends `/api`
and the OpenAPI paths to the REST app and everything else to the pages.
"""
