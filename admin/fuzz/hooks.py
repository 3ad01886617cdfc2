"""Schemathesis hooks for faaso's admin API (scripts/schemathesis loads them, with schemathesis.toml beside them).

An upload (`PUT /admin/funkos/{name}`) is `application/gzip`, which Schemathesis cannot make on
its own: its generated strings are sent as raw bytes, like `application/octet-stream`. They are
almost never a valid archive, which is the point: every one must be refused as documented.
"""

import schemathesis

schemathesis.serializer.alias("application/gzip", "application/octet-stream")
