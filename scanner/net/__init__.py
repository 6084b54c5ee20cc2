"""HTTP: the client, pacing, confinement, paging, auth, clouds."""
