"""The parts of a solution PA007 reads: environment variable definitions
(`environmentvariabledefinitions/<schema>/environmentvariabledefinition.xml`), their current values
(`environmentvariablevalues.json`) and deployment settings documents (`pac solution create-settings`).

XML with a DTD is refused (no entity expansion); nothing here keeps a value beyond the EnvVarDef it
returns, which the caller hands to rules/PA007.py and drops.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from scanner.posture.model import unwrap_definition

ENV_TYPE_NAMES = {"100000000": "String", "100000001": "Number", "100000002": "Boolean", "100000003": "JSON",
                  "100000004": "Data source", "100000005": "Secret"}
ENV_TYPE_STRING = "100000000"
ENV_TYPE_JSON = "100000003"
ENV_TYPE_SECRET = "100000005"


@dataclass(frozen=True, slots=True)
class EnvVarDef:
    schemaname: str
    displayname: str = ""
    type: str = ""  # option value as text, e.g. '100000000'
    defaultvalue: str | None = field(default=None, repr=False)  # a secret, maybe: never in a repr
    secretstore: str | None = None
    artifact: str = ""


def parse_env_var_definition_xml(text: str | bytes, artifact: str = "") -> EnvVarDef:
    """One `environmentvariabledefinitions/<schema>/environmentvariabledefinition.xml`."""
    if isinstance(text, bytes):
        if b"<!DOCTYPE" in text[:2048].upper() or b"<!ENTITY" in text.upper():
            raise ValueError("DTDs are not accepted in environment variable definitions")
    elif "<!DOCTYPE" in text[:2048].upper() or "<!ENTITY" in text.upper():
        raise ValueError("DTDs are not accepted in environment variable definitions")
    root = ET.fromstring(text)
    schema = root.get("schemaname") or (root.findtext("schemaname") or "")
    disp_el = root.find("displayname")
    disp = ""
    if disp_el is not None:
        disp = disp_el.get("default") or (disp_el.text or "").strip()
        if not disp:
            lab = disp_el.find("label")
            disp = lab.get("description", "") if lab is not None else ""
    dv = root.find("defaultvalue")
    return EnvVarDef(schemaname=schema, displayname=disp, type=(root.findtext("type") or "").strip(),
                     defaultvalue=dv.text if dv is not None and dv.text is not None else None,
                     secretstore=(root.findtext("secretstore") or None), artifact=artifact)


def parse_env_var_values_json(doc: Any) -> dict[str, str]:
    """`environmentvariablevalues.json` → {schemaname: value}. Accepts the solution export shape
    `{environmentvariablevalues:{environmentvariablevalue:[{schemaname,value}] | {…}}}` and plain lists."""
    out: dict[str, str] = {}
    node = doc
    if isinstance(node, dict) and "environmentvariablevalues" in node:
        node = node["environmentvariablevalues"]
    if isinstance(node, dict) and "environmentvariablevalue" in node:
        node = node["environmentvariablevalue"]
    if isinstance(node, dict):
        node = [node]
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                sn = item.get("schemaname") or item.get("SchemaName") or item.get("@schemaname")
                v = item.get("value", item.get("Value"))
                if sn and isinstance(v, str):
                    out[str(sn)] = v
    return out


def is_deployment_settings(doc: Any) -> bool:
    """A deployment settings document (`{EnvironmentVariables:[…], ConnectionReferences:[…]}`), not a flow."""
    return isinstance(doc, dict) and (isinstance(doc.get("EnvironmentVariables"), list)
                                      or isinstance(doc.get("ConnectionReferences"), list)) \
        and unwrap_definition(doc) is None
