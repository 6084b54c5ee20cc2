"""The posture rules, in id order: each module PA00x.py holds one rule's metadata (`RULE`), its check
and its positive and negative examples.

  PA001 high    secret source without Secure Outputs
  PA002 high    an action consumes secret data with its inputs visible in run history
  PA003 high    secret data passes through a Compose / Parse JSON / Select / variable that is visible
  PA004 medium  secret in a URI query string
  PA005 high    credential typed into the definition
  PA006 medium  secret data sent to a child flow or echoed by a Response without Secure Inputs
  PA007 high    environment variable holding a secret as plain text (solutions, deployment settings)
  PA008 medium  cause-only: a secret received from outside and recorded unsecured
"""
from __future__ import annotations

from scanner.posture.base import PostureRule
from scanner.posture.rules import PA001, PA002, PA003, PA004, PA005, PA006, PA007, PA008

RULES: dict[str, PostureRule] = {m.RULE.id: m.RULE for m in (PA001, PA002, PA003, PA004, PA005, PA006, PA007, PA008)}
