"""Builders of the rules' example definitions, and the fake credentials the examples type in.

Each rule file keeps its own positive and negative examples (tests/posture runs them all); these
helpers only spell the actions they are made of.
"""
from __future__ import annotations

from typing import Any

# Fake, non-working credential-shaped strings for the examples (never real secrets).
EX_PASSWORD = "Pr0d-Basic-Pa55w0rd-Example-7781"
EX_CLIENT_SECRET = "Xk38Q~examplesecretvalue0123456789abcdEF"
EX_API_KEY = "4f9b2c7e1d8a4b6f9e0c3a5d7b1e2f40"


def kv(name: str = "Get_secret", secure: list[str] | None = None, run_after: dict | None = None) -> dict:
    node: dict = {"type": "OpenApiConnection", "runAfter": run_after or {},
                  "inputs": {"host": {"connectionName": "shared_keyvault", "operationId": "GetSecret",
                                      "apiId": "/providers/Microsoft.PowerApps/apis/shared_keyvault"},
                             "parameters": {"secretName": "PartnerApiKey"}}}
    if secure:
        node["runtimeConfiguration"] = {"secureData": {"properties": secure}}
    return {name: node}


def defn(*action_dicts: dict) -> dict:
    acts: dict = {}
    for d in action_dicts:
        acts.update(d)
    return {"triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {}}}, "actions": acts}


def http(name: str, uri: str = "https://partner.example.com/api/orders", headers: dict | None = None,
         body: Any = None, secure: list[str] | None = None, auth: dict | None = None) -> dict:
    inputs: dict = {"method": "POST", "uri": uri}
    if headers:
        inputs["headers"] = headers
    if body is not None:
        inputs["body"] = body
    if auth:
        inputs["authentication"] = auth
    node: dict = {"type": "Http", "inputs": inputs, "runAfter": {}}
    if secure:
        node["runtimeConfiguration"] = {"secureData": {"properties": secure}}
    return {name: node}


def compose(name: str, value: Any, secure: list[str] | None = None) -> dict:
    node: dict = {"type": "Compose", "inputs": value, "runAfter": {}}
    if secure:
        node["runtimeConfiguration"] = {"secureData": {"properties": secure}}
    return {name: node}


def init_var(name: str, var: str, value: Any) -> dict:
    return {name: {"type": "InitializeVariable", "runAfter": {},
                   "inputs": {"variables": [{"name": var, "type": "string", "value": value}]}}}
