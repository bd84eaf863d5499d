"""End-to-end latency of POST /v1/query and /v1/search under a bounded concurrent load.

    python bench/query_load.py [--documents 60] [--scanned 3] [--levels 1 2 4 8]
                               [--requests 100] [--out bench/results/query_load.json]
                               [--plot docs/query_load.png]

An index is built with `scanrag ingest` from generated documents: --documents born-digital
PDFs of two pages (an invoice with a line-item table, then a page of running text with one
fact in it), and --scanned invoice scans (JPEG, 200 dpi, OCR'd by `embedded`). Then
`scanrag serve` runs it on 127.0.0.1 (one uvicorn process, the default extractive answerer),
and the load comes from this process over HTTP/1.1 keep-alive connections:

  for each concurrency level c, c clients start together and each sends --requests
  requests one after the other (a closed loop: a client waits for its answer before the next
  question), alternating POST /v1/query {"question", "top_k": 5} and POST /v1/search
  {"query", "top_k": 5}, the questions and queries drawn from the documents' facts.

Per level: latency p50/p95/p99 as the client sees it (both routes, and each apart), requests
per second (requests / wall time of the level), errors, and the server's RSS and CPU seconds.
Ten untimed requests warm the server first. The load generator shares the machine's cores
with the server, as a client on the same host would.

    python bench/query_load.py --tenants [--tenant-count 50] [--tenant-docs 20]
                               [--chunks 10] [--requests 100]

compares tenant layouts instead: the same synthetic chunks (random 384-d unit vectors, BM25
terms from generated words) written straight into two embedded Qdrant stores, one with
--tenant-count tenants of --tenant-docs documents each, one with a single tenant holding all
of them. Hybrid searches (top 5, each the tenant's own) alternate between the two stores, so
that the machine's load falls on both alike; the figures are the store's search latency
(query encoding, the same in both, is left out).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    DOCS,
    RESULTS,
    describe,
    finish,
    free_port,
    machine,
    pyplot,
    save_plot,
    write_json,
)

from scanrag.evaluate import percentile

SCANRAG = Path(sys.executable).parent / "scanrag"
FIRST = ["Nora", "Tariq", "Ines", "Viktor", "Dana", "Chen", "Rosa", "Amir", "Lena", "Kofi"]
LAST = ["Tanaka", "Alvarez", "Moreau", "Brennan", "Haddad", "Santos", "Lindqvist", "Okafor"]
COMPANIES = ["Orchid Logistics", "Pioneer Ceramics", "Crescent Traders", "Harbor Mills"]
COMPANIES += ["Northwind Foods", "Summit Tools", "Bluefin Marine", "Atlas Paper"]
CITIES = ["Springfield", "Riverton", "Lakeside", "Fairview", "Oakdale", "Brookfield"]
ITEMS = ["Drill bit 6mm", "Fuse 10A", "Cable reel 50m", "PVC elbow 32mm", "Hex bolt 40mm"]


def make_documents(folder: Path, count: int, scanned: int) -> list[dict[str, str]]:
    """Write the PDFs and scans; returns one fact per question (question, search query)."""
    from scanrag import testing

    rng = random.Random(11)
    facts: list[dict[str, str]] = []
    for i in range(count):
        number = f"INV-{5000 + i}"
        contact = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        seller, buyer = rng.sample(COMPANIES, 2)
        city = rng.choice(CITIES)
        total = f"${rng.randint(1, 90):,}{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}"
        pallets = rng.randint(20, 900)
        invoice = [
            (72, 80, f"INVOICE {number}", 16),
            (72, 120, f"Seller: {seller} Ltd., {rng.randint(1, 99)} Elm Street, {city}", 10),
            (72, 136, f"Bill to: {buyer} Ltd.", 10),
            (72, 152, f"Payment due: {rng.randint(1, 28)} July 2025", 10),
            (72, 190, "Item            Qty     Unit price     Amount", 10),
        ]
        for row, item in enumerate(rng.sample(ITEMS, 3)):
            qty, price = rng.randint(1, 400), rng.randint(100, 9000) / 100
            invoice.append(
                (72, 206 + 16 * row, f"{item}    {qty}    ${price:.2f}    ${qty * price:,.2f}", 10)
            )
        invoice += [
            (300, 270, f"Total due: {total}", 11),
            (72, 310, f"Questions about this invoice should be sent to {contact}.", 10),
        ]
        text = testing.filler(rng, 120) + f". The warehouse in {city} holds {pallets} pallets "
        text += f"for {seller}. " + testing.filler(rng, 160)
        report = [(72, 80, f"Warehouse note for {number}", 14)]
        report += testing.pdf_paragraph(72, 120, text, width=450)
        testing.text_pdf([invoice, report], folder / f"invoice_{5000 + i}.pdf")
        facts += [
            {
                "question": f"What is the total due on invoice {number}?",
                "query": f"total due invoice {number}",
            },
            {
                "question": f"Who should questions about invoice {number} be sent to?",
                "query": f"questions about invoice {number} contact",
            },
            {
                "question": f"How many pallets does the warehouse note for {number} mention?",
                "query": f"warehouse pallets {city} {seller}",
            },
        ]
    for i in range(scanned):
        number = f"INV-{9000 + i}"
        sheet = testing.invoice(number=number, total=f"${rng.randint(100, 9999)}.50")
        sheet.image(noise=3, seed=i).save(folder / f"scan_{9000 + i}.jpg", quality=90)
        facts.append(
            {
                "question": f"What is the total due on invoice {number}?",
                "query": f"invoice {number} total due",
            }
        )
    return facts


def request(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> tuple[int, bool]:
    """(status, whether the answer cites something / the search found something)."""
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        return response.status, False
    reply = json.loads(data)
    return 200, bool(reply.get("citations") or reply.get("hits"))


def load(port: int, facts: list[dict[str, str]], clients: int, requests: int) -> dict[str, Any]:
    """`clients` closed-loop clients, `requests` each, started together."""
    start = threading.Barrier(clients + 1)
    samples: list[list[tuple[str, float, int, bool]]] = [[] for _ in range(clients)]

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.connect()
        start.wait()
        for j in range(requests):
            fact = facts[(number * 7919 + j) % len(facts)]
            route = "query" if (number + j) % 2 == 0 else "search"
            body = (
                {"question": fact["question"], "top_k": 5}
                if route == "query"
                else {"query": fact["query"], "top_k": 5}
            )
            began = time.perf_counter()
            try:
                status, found = request(conn, f"/v1/{route}", body)
            except (OSError, http.client.HTTPException):
                status, found = 0, False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            samples[number].append((route, time.perf_counter() - began, status, found))
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    flat = [sample for per_client in samples for sample in per_client]

    def stats(route: str | None) -> dict[str, float]:
        ms = [s[1] * 1000 for s in flat if route in (None, s[0]) and s[2] == 200]
        return {
            "requests": len(ms),
            **{f"p{q}_ms": round(percentile(ms, q), 1) for q in (50, 95, 99)},
            "mean_ms": round(float(np.mean(ms)), 1),
        }

    return {
        "clients": clients,
        "requests": len(flat),
        "errors": sum(s[2] != 200 for s in flat),
        "query_answered": round(
            sum(s[3] for s in flat if s[0] == "query") / max(1, sum(s[0] == "query" for s in flat)),
            3,
        ),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(flat) / wall, 2),
        "all": stats(None),
        "query": stats("query"),
        "search": stats("search"),
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import psutil

    info = machine()
    started_all = time.perf_counter()
    corpus, data_dir = work / "docs", work / "data"
    corpus.mkdir()
    facts = make_documents(corpus, args.documents, args.scanned)
    print(f"{args.documents} PDFs and {args.scanned} scans in {corpus}; scanrag ingest ...")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANRAG_")}
    began = time.perf_counter()
    done = subprocess.run(
        [str(SCANRAG), "ingest", str(corpus), "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    ingest = json.loads(done.stdout)
    ingest_s = time.perf_counter() - began
    print(f"  {ingest['pages']} pages in {ingest_s:.1f}s (wall, with start-up)", flush=True)
    from scanrag import Settings
    from scanrag.retrieval.index import Index

    with Index(Settings(data_dir=data_dir)) as index:
        chunks = index.store.count()

    port = free_port()
    log = (work / "server.log").open("w")
    serve = [str(SCANRAG), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(
        [*serve, "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    levels: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"scanrag serve did not start; see {work / 'server.log'}")
            time.sleep(0.5)
        process = psutil.Process(server.pid)
        load(port, facts, 1, 10)  # warm-up: models loaded, first allocations made
        for clients in args.levels:
            cpu_before = sum(process.cpu_times()[:2])
            level = load(port, facts, clients, args.requests)
            level["server_cpu_s"] = round(sum(process.cpu_times()[:2]) - cpu_before, 2)
            level["server_rss_mb"] = round(process.memory_info().rss / 2**20, 1)
            level["load_average"] = [round(v, 2) for v in os.getloadavg()]
            levels.append(level)
            a = level["all"]
            print(
                f"  {clients} clients: {level['requests_per_s']:.1f} req/s, p50 {a['p50_ms']} ms, "
                f"p95 {a['p95_ms']} ms, p99 {a['p99_ms']} ms, errors {level['errors']}",
                flush=True,
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    from importlib.metadata import version

    return {
        "benchmark": "query_load",
        "command": "python bench/query_load.py " + " ".join(args.argv),
        "machine": finish(info),
        "versions": {name: version(name) for name in ("scanrag", "uvicorn", "fastapi")},
        "setup": {
            "documents": args.documents,
            "scanned": args.scanned,
            "pages": ingest["pages"],
            "chunks": chunks,
            "ingest_s": round(ingest_s, 1),
            "requests_per_client": args.requests,
            "top_k": 5,
            "mix": "alternating POST /v1/query and POST /v1/search",
            "server": "scanrag serve (uvicorn, one process), extractive answerer",
        },
        "levels": levels,
        "total_s": round(time.perf_counter() - started_all),
    }


def table(result: dict[str, Any]) -> str:
    setup = result["setup"]
    out = [
        f"POST /v1/query + /v1/search on 127.0.0.1, top_k 5, {setup['requests_per_client']} "
        "requests per client",
        f"index: {setup['documents']} born-digital PDFs and {setup['scanned']} scans "
        f"({setup['pages']} pages, {setup['chunks']} chunks)",
        describe(result["machine"]),
        "",
        f"{'clients':>7}{'req/s':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'query p50':>11}"
        f"{'query p95':>11}{'search p50':>12}{'search p95':>12}{'errors':>8}{'load 1m':>9}",
    ]
    for level in result["levels"]:
        a, q, s = level["all"], level["query"], level["search"]
        out.append(
            f"{level['clients']:>7}{level['requests_per_s']:>8.1f}{a['p50_ms']:>8.1f}"
            f"{a['p95_ms']:>8.1f}{a['p99_ms']:>8.1f}{q['p50_ms']:>11.1f}{q['p95_ms']:>11.1f}"
            f"{s['p50_ms']:>12.1f}{s['p95_ms']:>12.1f}{level['errors']:>8}"
            f"{level['load_average'][0]:>9.2f}"
        )
    peak = max(level["server_rss_mb"] for level in result["levels"])
    answered = min(level["query_answered"] for level in result["levels"])
    out += [
        "",
        f"latency in ms as the client sees it; queries answered with a citation: at least "
        f"{answered:.0%} per level;",
        f"server RSS up to {peak:.0f} MB; ingest {setup['ingest_s']} s; run time "
        f"{result['total_s']} s",
    ]
    return "\n".join(out)


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    levels = result["levels"]
    x = [level["clients"] for level in levels]
    fig, (latency, rate) = plt.subplots(1, 2, figsize=(11, 3.8))
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        latency.plot(x, [level["all"][key] for level in levels], style, label=key[:3])
    latency.plot(
        x, [level["query"]["p95_ms"] for level in levels], "s:", label="p95 /v1/query", alpha=0.7
    )
    latency.plot(
        x, [level["search"]["p95_ms"] for level in levels], "s--", label="p95 /v1/search", alpha=0.7
    )
    latency.set_xscale("log", base=2)
    latency.set_xticks(x, [str(v) for v in x])
    latency.set_xlabel("concurrent clients")
    latency.set_ylabel("latency (ms)")
    latency.legend(fontsize=8)
    latency.grid(alpha=0.3)
    rate.plot(x, [level["requests_per_s"] for level in levels], "o-", color="#2ca02c")
    rate.set_xscale("log", base=2)
    rate.set_xticks(x, [str(v) for v in x])
    rate.set_xlabel("concurrent clients")
    rate.set_ylabel("requests per second")
    rate.set_ylim(bottom=0)
    rate.grid(alpha=0.3)
    save_plot(fig, path, "scanrag serve under load", result["machine"])


def tenant_layouts(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Hybrid search latency: many small tenants against one tenant of as many documents."""
    from scanrag.retrieval.embedding import SparseEncoder
    from scanrag.retrieval.store import EdgeStore, StorePoint

    info = machine()
    rng = np.random.default_rng(7)
    words = ["".join(rng.choice(list("abcdefghijklmnoprstuvw"), 7)) for _ in range(5000)]
    sparse = SparseEncoder()
    documents = args.tenant_count * args.tenant_docs
    owners = {"tenants": [f"t{i // args.tenant_docs:03d}" for i in range(documents)],
              "one tenant": ["default"] * documents}  # fmt: skip
    stores = {name: EdgeStore(work / name.replace(" ", "-"), 384) for name in owners}
    texts: list[list[str]] = []
    vectors = rng.normal(size=(documents * args.chunks, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    began = time.perf_counter()
    for doc in range(documents):
        batch: dict[str, list[StorePoint]] = {name: [] for name in owners}
        for chunk in range(args.chunks):
            n = doc * args.chunks + chunk
            text = [str(w) for w in rng.choice(words, 60)]
            texts.append(text)
            joined = " ".join(text)
            terms = sparse.encode_document(joined)  # the same chunk in every layout
            for name, tenants in owners.items():
                payload = {"tenant": tenants[doc], "doc_id": f"{doc:016x}", "chunk": chunk,
                           "source": f"d{doc}.pdf", "source_name": f"d{doc}.pdf",
                           "text": joined, "pages": [1], "labels": ["text"],
                           "regions": [], "metadata": {}, "meta_terms": []}  # fmt: skip
                batch[name].append(StorePoint(f"{n:032x}", vectors[n], terms, payload))
        for name, store in stores.items():
            store.upsert(batch[name])
    for store in stores.values():
        store.optimize()
    build_s = time.perf_counter() - began
    print(f"{documents} documents x {args.chunks} chunks in each store, built in {build_s:.0f}s")
    samples: dict[str, list[float]] = {name: [] for name in owners}
    found: dict[str, int] = {name: 0 for name in owners}
    for i in range(args.requests + 20):  # the first 20 warm up, untimed
        n = int(rng.integers(documents * args.chunks))
        doc = n // args.chunks
        dense = vectors[n] + rng.normal(scale=0.03, size=384).astype(np.float32)
        query = sparse.encode_query(" ".join(rng.choice(texts[n], 4)))
        order = list(owners) if i % 2 == 0 else list(owners)[::-1]
        for name in order:
            start = time.perf_counter()
            hits = stores[name].search(dense, query, 5, tenant=owners[name][doc])
            elapsed = (time.perf_counter() - start) * 1000
            if i >= 20:
                samples[name].append(elapsed)
                found[name] += any(hit.payload["doc_id"] == f"{doc:016x}" for hit in hits)
    for store in stores.values():
        store.close()
    layouts = {
        name: {
            "tenants": len(set(owners[name])),
            "documents_per_tenant": documents // len(set(owners[name])),
            **{f"p{q}_ms": round(percentile(ms, q), 2) for q in (50, 95, 99)},
            "mean_ms": round(float(np.mean(ms)), 2),
            "found_own_document": round(found[name] / len(ms), 3),
        }
        for name, ms in samples.items()
    }
    return {
        "benchmark": "query_load --tenants",
        "command": "python bench/query_load.py " + " ".join(args.argv),
        "machine": finish(info),
        "setup": {
            "documents": documents,
            "chunks_per_document": args.chunks,
            "searches": args.requests,
            "mode": "hybrid (dense + sparse, RRF), top 5",
            "store": "EdgeStore (embedded Qdrant), tenant field indexed is_tenant",
            "build_s": round(build_s, 1),
        },
        "layouts": layouts,
        "p95_ratio": round(layouts["tenants"]["p95_ms"] / layouts["one tenant"]["p95_ms"], 3),
    }


def tenant_table(result: dict[str, Any]) -> str:
    setup = result["setup"]
    out = [
        f"store search latency, {setup['mode']}, {setup['searches']} searches per layout, "
        f"{setup['documents']} documents of {setup['chunks_per_document']} chunks in each",
        describe(result["machine"]),
        "",
        f"{'layout':<12}{'tenants':>8}{'docs/tenant':>12}{'p50':>8}{'p95':>8}{'p99':>8}"
        f"{'mean':>8}{'own doc found':>15}",
    ]
    for name, row in result["layouts"].items():
        out.append(
            f"{name:<12}{row['tenants']:>8}{row['documents_per_tenant']:>12}{row['p50_ms']:>8.2f}"
            f"{row['p95_ms']:>8.2f}{row['p99_ms']:>8.2f}{row['mean_ms']:>8.2f}"
            f"{row['found_own_document']:>15.0%}"
        )
    out += ["", f"p95 of many tenants / p95 of one tenant: {result['p95_ratio']:.2f}"]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=60, help="born-digital PDFs")
    parser.add_argument("--scanned", type=int, default=3, help="scanned invoices (OCR)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--out", type=Path, default=RESULTS / "query_load.json")
    parser.add_argument("--plot", type=Path, default=DOCS / "query_load.png")
    parser.add_argument("--plot-only", action="store_true", help="re-draw the plot from --out")
    parser.add_argument("--tenants", action="store_true", help="compare tenant layouts")
    parser.add_argument("--tenant-count", type=int, default=50)
    parser.add_argument("--tenant-docs", type=int, default=20, help="documents per tenant")
    parser.add_argument("--chunks", type=int, default=10, help="chunks per document")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.tenants:
        with tempfile.TemporaryDirectory(prefix="scanrag-tenants-") as work:
            result = tenant_layouts(args, Path(work))
        print(tenant_table(result))
        out = args.out if "--out" in args.argv else RESULTS / "query_load_tenants.json"
        write_json(out, result)
        print(f"\nwritten to {out}")
        return 0
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.plot)
        return 0
    if args.documents < 1 or args.requests < 1 or min(args.levels) < 1:
        parser.error("--documents, --requests and --levels must be at least 1")
    with tempfile.TemporaryDirectory(prefix="scanrag-load-") as work:
        result = run(args, Path(work))
    print()
    print(table(result))
    write_json(args.out, result)
    plot(result, args.plot)
    print(f"\nwritten to {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
