"""Benchmark the detection engine on a synthetic run-history corpus. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/detectors.py [--mb 20] [--seed 7] [--known 0,200,10000] [--profile]
                                             [--matchers hyperscan,portable] [--files-jobs 1,2 | --no-files]
                                             [--files-known 0,10000]

The corpus is Power Automate-shaped action inputs/outputs (HTTP responses with x-ms-* headers and
ETags, SharePoint/Graph list items full of GUIDs and timestamps, connector inputs, Compose strings,
`$content` base64 bodies, stringified JSON, run names and content links) with planted fake secrets of
the kinds flowleaks targets. It reports MB/s and leaves/s of `engine.scan` (with and without known
values loaded), recall per planted kind, and the number of findings that match no plant.

Then the same corpus is written to a temporary directory (half the bodies one JSON file each, the
rest in JSON Lines files of 100) and `flowleaks scan-files` runs on it as a whole process — start-up,
reading, the worker pool and the database writes included — for each `--files-jobs` value: MB/s in
total and per core, CPU seconds, and precision/recall on the plants, read back from the database
(a finding is on a plant when its json_path lies under the planted part of a planted body).
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import string
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import run_cli  # noqa: E402
from detectors.engine import Engine  # noqa: E402
from detectors.known_values import KnownValues  # noqa: E402

B64 = string.ascii_letters + string.digits + "+/"
ALNUM = string.ascii_letters + string.digits
WORDS = ("invoice order customer approval pending finance report quarterly contoso fabrikam northwind "
         "request status manager review document library project team site budget travel expense "
         "meeting schedule update notification reminder weekly summary").split()


def rstr(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def guid(rng):
    h = "%032x" % rng.getrandbits(128)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def run_name(rng):
    return "0858" + "".join(rng.choice(string.digits) for _ in range(25)) + "CU" + str(rng.randint(1, 300))


def ts(rng):
    return f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}.{rng.randint(1000000, 9999999)}Z"


def sentence(rng, n=12):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def content_link(rng, kind):
    r = run_name(rng)
    return {"uri": f"https://prod-{rng.randint(10, 99)}.westeurope.logic.azure.com:443/workflows/{'%032x' % rng.getrandbits(128)}/runs/{r}/contents/{kind}",
            "contentVersion": base64.b64encode(rng.randbytes(16)).decode(), "contentSize": rng.randint(100, 9000),
            "contentHash": {"algorithm": "md5", "value": base64.b64encode(rng.randbytes(16)).decode()}}


# -- planted secrets: kind -> (make(rng) -> (secret, placer)) ---------------------------------------
def plant(rng, kind, known_values):
    sig = rstr(rng, ALNUM + "-_", 43)
    if kind == "logic-apps-trigger-url":
        s = sig
        return s, {"uri": f"https://prod-{rng.randint(10, 99)}.westeurope.logic.azure.com:443/workflows/{'%032x' % rng.getrandbits(128)}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={s}"}
    if kind == "azure-ad-client-secret":
        s = rstr(rng, ALNUM, 3) + "8Q~" + rstr(rng, ALNUM + "_.-~", 34)
        return s, {"body": json.dumps({"tenant": guid(rng), "clientId": guid(rng), "credential": s})}
    if kind == "azure-storage-account-key":
        s = base64.b64encode(rng.randbytes(64)).decode()
        return s, {"connectionString": f"DefaultEndpointsProtocol=https;AccountName=contoso{rng.randint(1, 99)};AccountKey={s};EndpointSuffix=core.windows.net"}
    if kind == "azure-sas-token":
        s = base64.b64encode(rng.randbytes(32)).decode()
        from urllib.parse import quote
        return s, {"downloadUrl": f"https://contoso.blob.core.windows.net/files/r.pdf?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-12-31T00:00:00Z&spr=https&sig={quote(s, safe='')}"}
    if kind == "azure-servicebus-key":
        s = base64.b64encode(rng.randbytes(32)).decode()
        return s, {"inputs": {"connection": f"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={s}"}}
    if kind == "azure-functions-key":
        s = rstr(rng, ALNUM, 54) + "=="
        return s, {"uri": f"https://contoso-fn.azurewebsites.net/api/Process?code={s}", "method": "POST"}
    if kind == "sql-connection-string-password":
        s = rstr(rng, ALNUM + "!#%", 14)
        return s, {"body": {"settings": {"db": f"Server=tcp:contoso.database.windows.net,1433;Initial Catalog=crm;User ID=flow;Password={s};Encrypt=True"}}}
    if kind == "api-key-header":
        s = rstr(rng, "0123456789abcdef", 32)
        return s, {"headers": {"Ocp-Apim-Subscription-Key": s, "Content-Type": "application/json"}}
    if kind == "client-secret-body":
        s = rstr(rng, ALNUM + "-._~", 24)
        return s, {"body": f"grant_type=client_credentials&client_id={guid(rng)}&client_secret={s}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"}
    if kind == "private-key":
        s = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(rstr(rng, B64, 64) for _ in range(8)) + "\n-----END PRIVATE KEY-----"
        return s, {"body": {"certificate": {"pem": s}}}
    if kind == "bearer-token":
        hdr = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').decode().rstrip("=")
        pl = base64.urlsafe_b64encode(json.dumps({"aud": "api://x", "oid": guid(rng)}).encode()).decode().rstrip("=")
        s = f"{hdr}.{pl}.{rstr(rng, ALNUM + '-_', 86)}"
        return s, {"headers": {"Authorization": f"Bearer {s}"}}
    if kind == "basic-auth-header":
        s = rstr(rng, ALNUM, 12) + "!"
        return s, {"headers": {"Authorization": "Basic " + base64.b64encode(f"svc-flow:{s}".encode()).decode()}}
    if kind == "secret-keyword":
        s = rng.choice(["Winter", "Summer", "Spring"]) + str(rng.randint(2000, 2030)) + "!"
        return s, {"body": {"user": "svc", "password": s}}
    if kind == "github-token":
        s = "ghp_" + rstr(rng, ALNUM, 36)
        return s, {"body": {"message": f"token {s} rotated"}}
    if kind == "high-entropy":
        s = base64.b64encode(rng.randbytes(30)).decode()
        return s, {"body": {"config": {"value": s}}}
    if kind == "known-value":
        s = rng.choice(known_values)
        return s, {"body": {"log": f"step3 ok conn={s};retry=0"}}
    raise KeyError(kind)


KINDS = ["logic-apps-trigger-url", "azure-ad-client-secret", "azure-storage-account-key", "azure-sas-token",
         "azure-servicebus-key", "azure-functions-key", "sql-connection-string-password", "api-key-header",
         "client-secret-body", "private-key", "bearer-token", "basic-auth-header", "secret-keyword",
         "github-token", "high-entropy", "known-value"]


def decoy_body(rng):
    t = rng.random()
    if t < 0.3:  # SharePoint get items
        return {"statusCode": 200, "headers": {"x-ms-request-id": guid(rng), "x-ms-correlation-request-id": guid(rng),
                                               "ETag": f'"{rng.randint(1, 99)}"', "Date": "Tue, 06 Jan 2026 10:00:00 GMT",
                                               "Content-Type": "application/json; odata.metadata=minimal"},
                "body": {"value": [{"@odata.etag": f'"{rng.randint(1, 9)}"', "ItemInternalId": str(rng.randint(1, 9999)),
                                    "ID": rng.randint(1, 9999), "Title": sentence(rng, 5), "Modified": ts(rng), "Created": ts(rng),
                                    "Author": {"Claims": f"i:0#.f|membership|user{rng.randint(1, 99)}@contoso.com",
                                               "DisplayName": "Adele Vance", "Email": "adele@contoso.com"},
                                    "{Identifier}": f"Lists%252fInvoices%252f{rng.randint(1, 999)}_.000",
                                    "{Link}": f"https://contoso.sharepoint.com/sites/Finance/Lists/Invoices/DispForm.aspx?ID={rng.randint(1, 999)}",
                                    "GUID": guid(rng), "Description": sentence(rng, 20)} for _ in range(rng.randint(3, 12))]}}
    if t < 0.45:  # connector inputs
        return {"host": {"apiId": f"subscriptions/{guid(rng)}/providers/Microsoft.Web/locations/westeurope/runtimes/europe-001/apis/sharepointonline",
                         "connectionReferenceName": "shared_sharepointonline", "operationId": "GetItems"},
                "parameters": {"dataset": "https://contoso.sharepoint.com/sites/Finance", "table": guid(rng), "$top": 100}}
    if t < 0.6:  # Graph message with thumbnail and hex ids
        return {"statusCode": 200, "headers": {"request-id": guid(rng), "client-request-id": guid(rng),
                                               "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {"DataCenter": "West Europe", "Slice": "E", "Ring": "5"}})},
                "body": {"id": rstr(rng, ALNUM, 120) + "=", "subject": sentence(rng, 6), "bodyPreview": sentence(rng, 30),
                         "conversationId": rstr(rng, ALNUM, 60) + "=", "internetMessageId": f"<{rstr(rng, ALNUM, 40)}@contoso.com>",
                         "thumbnail": "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + rng.randbytes(600)).decode(),
                         "sha256": "%064x" % rng.getrandbits(256), "receivedDateTime": ts(rng)}}
    if t < 0.7:  # $content text body (CSV)
        csv = "\n".join(",".join([str(rng.randint(1, 9999)), rng.choice(WORDS), ts(rng), guid(rng)]) for _ in range(rng.randint(20, 80)))
        return {"body": {"$content-type": "text/csv", "$content": base64.b64encode(csv.encode()).decode()}}
    if t < 0.78:  # $content binary
        return {"body": {"$content-type": "application/pdf", "$content": base64.b64encode(b"%PDF-1.7\n" + rng.randbytes(rng.randint(2000, 20000))).decode()}}
    if t < 0.88:  # child flow / HTTP response headers with x-ms-workflow-*
        return {"statusCode": 202, "headers": {"x-ms-workflow-run-id": run_name(rng), "x-ms-workflow-id": "%032x" % rng.getrandbits(128),
                                               "x-ms-workflow-name": guid(rng), "x-ms-client-tracking-id": run_name(rng),
                                               "x-ms-trigger-history-name": run_name(rng), "x-ms-workflow-version": run_name(rng)[:29],
                                               "x-ms-execution-location": "westeurope"},
                "body": {"inputsLink": content_link(rng, "ActionInputs"), "outputsLink": content_link(rng, "ActionOutputs")}}
    # compose: stringified JSON and prose
    return {"inputs": json.dumps({"orderId": rng.randint(1, 99999), "customer": {"name": "Northwind", "id": guid(rng)},
                                  "notes": sentence(rng, 40), "lines": [{"sku": rstr(rng, string.ascii_uppercase + string.digits, 10),
                                                                          "qty": rng.randint(1, 9)} for _ in range(10)]})}


def build_corpus(mb: float, seed: int, known_values: list[str]):
    rng = random.Random(seed)
    bodies, plants = [], []
    size = 0
    i = 0
    while size < mb * 1_000_000:
        body = decoy_body(rng)
        if rng.random() < 0.08:
            kind = KINDS[i % len(KINDS)]
            secret, extra = plant(rng, kind, known_values)
            body = {"planted": extra, "context": body}
            plants.append((len(bodies), kind, secret))
            i += 1
        text = json.dumps(body)
        size += len(text)
        bodies.append(text if rng.random() < 0.5 else body)  # half as text, half parsed
    return bodies, plants, size


# -- the whole process: flowleaks scan-files on the corpus written to files ---------------------------
BENCH_KEY = "bench-fingerprint-key"
LINES_PER_FILE = 100


def write_corpus(bodies: list, root: Path) -> tuple[list[tuple[str, str]], int]:
    """Bodies to files: even indexes one `.json` file each (named like a content link's last segment),
    the odd ones in `.jsonl` files of LINES_PER_FILE. Returns each body's (file, JSONPath prefix) and
    the bytes written."""
    where: list[tuple[str, str]] = []
    size = 0
    lines: list[str] = []
    part = 0

    def flush() -> None:
        nonlocal size, part, lines
        if lines:
            data = "\n".join(lines) + "\n"
            (root / "history" / f"part{part:04d}.jsonl").write_text(data)
            size += len(data.encode())
            part, lines = part + 1, []

    (root / "history").mkdir(parents=True)
    for i, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body)
        if i % 2 == 0:
            d = root / "runs" / f"r{i // 1000:03d}" / f"b{i:06d}"
            d.mkdir(parents=True)
            (d / "ActionOutputs.json").write_text(text)
            size += len(text.encode())
            where.append((str((d / "ActionOutputs.json").relative_to(root)), "$"))
        else:
            lines.append(text)
            where.append((f"history/part{part:04d}.jsonl", f"$[line {len(lines)}]"))
            if len(lines) == LINES_PER_FILE:
                flush()
    flush()
    return where, size


def bench_files(bodies: list, plants: list, jobs_list: list[int], matchers: list[str],
                known_counts: list[int], known_values: list[str]) -> None:
    import hmac
    import hashlib
    import resource
    import shutil
    import tempfile
    from urllib.parse import unquote

    import duckdb

    def fp(secret: str) -> str:
        return hmac.new(BENCH_KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()

    tmp = Path(tempfile.mkdtemp(prefix="flowleaks-bench-"))
    try:
        corpus = tmp / "corpus"
        where, size = write_corpus(bodies, corpus)
        files = len({f for f, _ in where})
        print(f"scan-files corpus: {files} files ({len(bodies)} bodies), {size / 1e6:.1f} MB on disk")
        empty = tmp / "empty"
        empty.mkdir()
        env = {"FLOWLEAKS_FINGERPRINT_KEY": BENCH_KEY}
        floor = run_cli(["scan-files", str(empty), "--db", str(tmp / "empty.duckdb")], env)
        print(f"  start-up floor (an empty directory, database created): {floor.wall_s:.2f}s")
        planted = {where[idx]: (kind, secret) for idx, kind, secret in plants}
        runs = [(mt, k, j) for mt in matchers for k in known_counts for j in jobs_list]
        for matcher, n_known, jobs in runs:
            label = f"{matcher}, --jobs {jobs}, {n_known} known values"
            db = tmp / f"{matcher}-k{n_known}-j{jobs}.duckdb"
            cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            args = ["scan-files", str(corpus), "--jobs", str(jobs), "--db", str(db)]
            stdin = None
            if n_known:
                args.append("--known-values-stdin")
                stdin = "".join(v + "\n" for v in known_values[:n_known])
            m = run_cli(args, {**env, "FLOWLEAKS_MATCHER": matcher}, stdin=stdin)
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            if m.code not in (0, 1):
                print(f"  [{label}]: exit {m.code}: {m.stderr.strip()[:300]}")
                continue
            con = duckdb.connect(str(db), read_only=True)
            found = con.execute("SELECT file, json_path, rule_id, fingerprint FROM findings").fetchall()
            con.close()
            root = str(corpus)
            on_plant, off_plant, recalled, exact = 0, Counter(), set(), 0
            for file, path, rule, fingerprint in found:
                rel = str(Path(file).relative_to(root))
                prefix = path.split(".planted", 1)[0] if ".planted" in path else None
                hit = planted.get((rel, prefix)) if prefix else None
                if hit is None:
                    off_plant[rule] += 1
                    continue
                on_plant += 1
                if (rel, prefix) not in recalled:
                    recalled.add((rel, prefix))
                    exact += fingerprint in (fp(hit[1]), fp(unquote(hit[1])))
            wanted = {k for k, (kind, _) in planted.items() if n_known or kind != "known-value"}
            recall = len(recalled & wanted) / max(1, len(wanted))
            precision = on_plant / max(1, on_plant + sum(off_plant.values()))
            total = size / 1e6 / m.wall_s
            print(f"[scan-files: {label}] {total:.2f} MB/s in total, {total / jobs:.2f} MB/s per core "
                  f"({m.wall_s:.1f}s wall, {cpu:.1f} CPU s = {size / 1e6 / max(cpu, 1e-9):.2f} MB per CPU second, "
                  f"peak RSS of the parent {m.peak_rss_mb:.0f} MB)")
            print(f"  recall {recall:.3f} ({len(recalled & wanted)}/{len(wanted)}), precision {precision:.3f} "
                  f"({on_plant}/{on_plant + sum(off_plant.values())} findings on plants; off plants: {dict(off_plant)}); "
                  f"same secret as planted (fingerprint): {exact}/{len(recalled)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _signature(results: list) -> list:
    return [([(h.rule_id, h.secret, h.json_path, h.confidence) for h in r.hits],
             [(d.rule_id, d.filter, d.json_path) for d in r.dropped]) for r in results]


def bench_engine(bodies: list, plants: list, size: int, matcher: str, n_known: int, known_values: list[str],
                 profile: bool) -> list:
    kv = None
    if n_known:
        kv = KnownValues(key=b"bench-key-0123456789abcdef012345")
        t = time.perf_counter()
        for n, v in enumerate(known_values[:n_known]):
            kv.add_value(v, source=f"kv-bench/{n}")
        load_s = time.perf_counter() - t
    t = time.perf_counter()
    eng = Engine(known=kv, matcher=matcher)
    build_s = time.perf_counter() - t
    results = []
    with eng.session():
        if profile:
            import cProfile
            import pstats
            pr = cProfile.Profile()
            pr.enable()
        t = time.perf_counter()
        for b in bodies:
            results.append(eng.scan(b))
        dt = time.perf_counter() - t
        if profile:
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(20)
    leaves = eng.stats["leaves"]
    label = f"engine: {eng.matcher}, {n_known} known values"
    print(f"[{label}] {size / 1e6 / dt:.2f} MB/s per core, {leaves / dt:,.0f} leaves/s "
          f"({dt:.1f}s for {leaves:,} leaves, {eng.stats['leaves_ruled']:,} through the rules; engine built in "
          f"{build_s:.2f}s" + (f", {kv.values} known values loaded in {load_s:.2f}s" if kv else "") + ")")
    found = Counter()
    total = Counter()
    matched_hits = set()
    for idx, kind, secret in plants:
        if kind == "known-value" and not n_known:
            continue
        total[kind] += 1
        for hi, h in enumerate(results[idx].hits):
            if h.secret == secret or (len(h.secret) >= 8 and (h.secret in secret or secret in h.secret)):
                found[kind] += 1
                matched_hits.add((idx, hi))
                break
    for idx, kind, secret in plants:  # every hit on a planted secret counts as matched
        for hi, h in enumerate(results[idx].hits):
            if h.secret and (h.secret == secret or h.secret in secret or secret in h.secret):
                matched_hits.add((idx, hi))
    all_hits = [(i, hi, h) for i, r in enumerate(results) for hi, h in enumerate(r.hits)]
    unmatched = [h for i, hi, h in all_hits if (i, hi) not in matched_hits]
    rec = sum(found.values()) / max(1, sum(total.values()))
    prec = (len(all_hits) - len(unmatched)) / max(1, len(all_hits))
    print(f"  recall {rec:.3f} ({sum(found.values())}/{sum(total.values())}), precision {prec:.3f}; "
          f"findings matching no plant: {len(unmatched)} {dict(Counter(h.rule_id for h in unmatched))}")
    missed = [k for k in KINDS if total[k] and found[k] < total[k]]
    if missed:
        print("  missed kinds: " + ", ".join(f"{k} {found[k]}/{total[k]}" for k in missed))
    return results


def main() -> None:
    from detectors.prefilter import hyperscan_available

    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--known", default="0,200,10000", help="known-value counts for the engine runs")
    ap.add_argument("--matchers", default="hyperscan,portable", help="hyperscan, portable, off")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--files-jobs", default="1,2", help="--jobs values for the whole-process scan-files runs")
    ap.add_argument("--files-known", default="0,10000", help="known-value counts for the scan-files runs")
    ap.add_argument("--no-files", action="store_true", help="only the engine figures")
    ap.add_argument("--write-corpus", metavar="DIR", help="write the corpus to DIR as files and stop (to time "
                    "`flowleaks scan-files DIR` with farm-bench)")
    a = ap.parse_args()
    matchers = [m for m in a.matchers.split(",") if m and (m != "hyperscan" or hyperscan_available())]
    counts = [int(k) for k in a.known.split(",") if k.strip()]
    rng = random.Random(a.seed + 1)
    known_values = [rstr(rng, ALNUM + "!$%", rng.randint(12, 40)) for _ in range(max(counts + [200]))]
    t0 = time.perf_counter()
    # the planted known values are among the first 200, so every loaded set holds them
    bodies, plants, size = build_corpus(a.mb, a.seed, known_values[:200])
    print(f"corpus: {len(bodies)} payloads, {size / 1e6:.1f} MB, {len(plants)} planted secrets "
          f"({time.perf_counter() - t0:.1f}s to build)")
    if a.write_corpus:
        where, on_disk = write_corpus(bodies, Path(a.write_corpus))
        print(f"wrote {len({f for f, _ in where})} files, {on_disk / 1e6:.1f} MB, to {a.write_corpus}")
        return
    drops_skips = None
    for n_known in counts:
        signatures = {}
        for matcher in matchers:
            results = bench_engine(bodies, plants, size, matcher, n_known, known_values, a.profile)
            signatures[matcher] = _signature(results)
            if drops_skips is None:
                drops_skips = (Counter(d.filter for r in results for d in r.dropped),
                               Counter(s.reason for r in results for s in r.skipped))
        if len(signatures) > 1:
            first = next(iter(signatures.values()))
            same = all(sig == first for sig in signatures.values())
            print(f"  same hits and filtered candidates from {', '.join(signatures)}: {'yes' if same else 'NO'}")
    if drops_skips:
        print(f"  drops by filter: {dict(drops_skips[0].most_common())}")
        print(f"  skips: {dict(drops_skips[1])}")
    if not a.no_files:
        bench_files(bodies, plants, [int(j) for j in a.files_jobs.split(",") if j.strip()], matchers,
                    [int(k) for k in a.files_known.split(",") if k.strip()], known_values)


if __name__ == "__main__":
    main()
