"""The run-content host: SAS-signed content links (`inputsLink` / `outputsLink`) and the listener that
serves them (no auth; the signature, the expiry `se` and the expired-link faults are checked)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .listener import Reply, error_reply
from .model import Body, RunDetail, Step, fmt_ticks, parse_iso_ticks, to_ticks
from .tenant import Flow

CONTENT_API_VERSION = "2016-06-01"
_CONTENT_ROUTE = re.compile(
    r"^/workflows/(?P<hex>[0-9a-f]{32})/runs/(?P<run>[^/]+)"
    r"(?:/actions/(?P<action>[^/]+)(?:/repetitions/(?P<rep>[^/]+))?)?"
    r"/contents/(?P<kind>TriggerInputs|TriggerOutputs|ActionInputs|ActionOutputs)$")


class ContentLinks:
    """FakeFlowApi's content links and content listener (needs `_sig_key`, `link_lifetime_ticks`,
    `content_url`, `_last_se`, `_revoked` and the plumbing of server.py and faults.py)."""

    def _issue_se(self) -> str:
        """The link expiry (`se`) for one API response. Strictly increasing, so links issued after an
        expire_links_once revocation are always newer than the revoked ones."""
        with self._lock:
            se = max(to_ticks(datetime.now(timezone.utc)) + self.link_lifetime_ticks, self._last_se + 1)
            self._last_se = se
        return fmt_ticks(se)

    def _sign(self, path: str, se: str) -> str:
        mac = hmac.new(self._sig_key, f"{path}\n{se}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _put_links(self, props: dict, flow: Flow, detail: RunDetail, step: Step, rep: Any, se: str) -> None:
        """Set inputsLink/outputsLink on props as the API shows them (secured: no uri, or null/absent)."""
        holder = rep if rep is not None else step
        prefix = "Trigger" if step is detail.trigger else "Action"
        for side, body in (("inputs", holder.inputs), ("outputs", holder.outputs)):
            if body is None:
                continue
            meta = {"contentVersion": body.md5, "contentSize": len(body.raw),
                    "contentHash": {"algorithm": "md5", "value": body.md5}}
            if side in step.secure:
                style = flow.secured_link_style
                if style != "absent":
                    props[f"{side}Link"] = None if style == "null" else {**meta, "secureData": {"properties": [side]}}
                continue
            tail = f"/runs/{detail.header.name}"
            if prefix == "Action":
                tail += f"/actions/{quote(step.name, safe='')}"
                if rep is not None:
                    tail += f"/repetitions/{rep.name}"
            tail += f"/contents/{prefix}{side.capitalize()}"
            path = f"/workflows/{flow.workflow_hex}{tail}"
            query = (f"api-version={CONTENT_API_VERSION}&se={quote(se, safe='')}"
                     f"&sp={quote(tail + '/read', safe='')}&sv=1.0&sig={self._sign(path, se)}")
            props[f"{side}Link"] = {"uri": f"{self.content_url}{path}?{query}", **meta}

    def _content(self, method: str, target: str, headers: Any) -> Reply | object:
        self._sleep()
        if headers.get("Authorization") is not None:
            with self._lock:
                self.content_auth_headers_seen.append(headers["Authorization"])
        url = urlsplit(target)
        reply = self._throttle(self._content_bucket, False)
        attempt = 0
        # Keyed by link path, not URL: `se` and `sig` change on every re-read of the run, and the
        # faults must not depend on the clock or on the server's signing key.
        key = f"content {method} {url.path}"
        if reply is None:
            reply, attempt = self._transient_fault(key)
        if reply is None:
            reply = self._malform(self._content_route(method, url.path, url.query), key, attempt)
            if reply.json_ok:
                self.stats.content_served(url.path, len(reply.body))
        return self._finish("content", "content", method, url.path, reply)

    def _content_route(self, method: str, path: str, query: str) -> Reply:
        m = _CONTENT_ROUTE.match(path)
        if m is None or method != "GET":
            return error_reply(404, "NotFound", "No such content.")
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        tail = path[len(f"/workflows/{m['hex']}"):]
        se_text = q.get("se", "")
        if (q.get("sv") != "1.0" or q.get("sp") != tail + "/read"
                or not hmac.compare_digest(q.get("sig", ""), self._sign(path, se_text))):
            return error_reply(403, "AuthorizationFailed", "The request signature is not valid.")
        se = parse_iso_ticks(se_text)
        expired = se < to_ticks(datetime.now(timezone.utc))
        run_name = unquote(m["run"])
        always = self.faults.always_expired_links
        if always is True or (always and run_name in always):
            expired = True
        elif self.faults.expire_links_once:
            with self._lock:
                revoked = self._revoked.setdefault(path, se)   # the first fetch of a path revokes its se
            expired = expired or se <= revoked
        if expired:
            self.stats.add(expired_links=1)
            return error_reply(403, "AuthorizationFailed", "The SAS token in the request has expired.")

        flow = self.tenant.flow_by_hex(m["hex"])
        detail = flow and self.tenant.run_detail(flow, run_name)
        if detail is None:
            return error_reply(404, "NotFound", "No such content.")
        kind = m["kind"]
        step = detail.trigger if kind.startswith("Trigger") else detail.actions.get(unquote(m["action"] or ""))
        holder: Any = step
        if step is not None and m["rep"]:
            holder = next((r for r in step.repetitions or () if r.name == m["rep"]), None)
        side = "inputs" if kind.endswith("Inputs") else "outputs"
        body: Body | None = getattr(holder, side, None) if holder is not None else None
        if body is None or side in step.secure:   # never signed; refuse even so
            return error_reply(404, "NotFound", "No such content.")
        return Reply(200, body.raw, {"Content-Type": "application/json; charset=utf-8"}, True)

    # --- Key Vault listener -------------------------------------------------------------------------------------
