"""Posture: what in a flow definition (or a solution's environment variables) lets secrets reach run
history. Pure functions over dicts: no HTTP, no store, no command line.

  model.py      the one reader of a definition (triggers, nested actions, secureData, JSON paths)
  taint.py      where a secret flows (expressions, references, the taint fixpoint) and who sees it
  sources.py    the actions whose outputs are a secret by construction (where taint starts)
  literals.py   values typed into a definition, and the detection engine's hits on them
  rules/        one module per rule PA001-PA008: metadata, check, examples; the registry `RULES`
  analyze.py    analyze_definition: every definition rule over one definition
  explain.py    the rule and action that explain a secret seen in run history (the crawl's cause)
  solution.py   environment variable definitions, values and deployment settings (PA007's input)
  canonical.py  the definition hash
  lint.py       `flowleaks lint` offline: files, zips and folders in, a report out (scanner/cli/lint.py
                is the command; the report package renders the report)

Findings never carry a secret: literal credentials are reported as `preview()` + keyed `fingerprint()`.
The detection engine is always the caller's: posture builds none.
"""
