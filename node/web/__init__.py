"""The node's ``portal`` module: serves the web portal's pages (the ``portal`` asset package) on the node's own
origin with a strict Content-Security-Policy (no inline script, connections only to this node and the
consortium's published nodes), no framing, no referrer, no MIME sniffing; and answers the consortium's other
origins with CORS on the API routes a patient's browser calls across nodes."""
