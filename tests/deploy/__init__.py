"""The deployment files run as written (issue 15): the Dockerfile, .dockerignore, the Kubernetes
manifests under deploy/kubernetes and the Container Apps template under deploy/azure.

Static checks (no Docker, no cluster, no network): every YAML parses; the CronJobs are what a
sharded nightly scan needs (an Indexed Job of N pods, N said once per place and the places agreeing, a
merge that starts after the scan can have ended, non-root, read-only root, no secret value); every
command line the files run is accepted by flowleaks' own click parser, and each pod's environment gives
the shard it should. Then the Kubernetes pods' shell lines are run for real, against the loopback fake
of the Flow API, as Kubernetes would run them: N shards, then the merge.

The tests: test_image.py (Dockerfile, .dockerignore, the package build), test_kubernetes.py (the
manifests, the scan and merge CronJobs, the pods run for real), test_azure.py (the Container Apps
jobs). Their readers: dockerfile.py, kubernetes.py, bicep.py, and commands.py for the command lines
the files run. Here: the paths and what counts as a credential's name.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# env names that hold a credential or key: never a literal value in a manifest or the image
SECRETISH = re.compile(r"SECRET|PASSWORD|TOKEN|(^|_)KEY($|_)|CREDENTIAL", re.I)
