"""HTTP, and nothing else sends a request: the client and its retries, errors, pacing, confinement,
content links, proxies, paging, auth, clouds."""
