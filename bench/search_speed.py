"""Search latency and upsert throughput of the vector stores at 10k, 100k (and 1M) chunks.

    python bench/search_speed.py [--sizes 10000 100000] [--queries 200] [--client-queries 50]
                                 [--client-max 10000] [--no-plain]
                                 [--out bench/results/search_speed.json]
                                 [--plot docs/search_speed.png]
    python bench/search_speed.py --sizes 1000000 --no-plain --stores edge \
        --store-dir /var/tmp/scanrag-1m --out bench/results/search_speed_1m.json
    python bench/search_speed.py --plot-only          # re-draw the plot from the JSON

Chunks are synthetic but shaped like real ones: 60–200 words drawn with a Zipf law from a
20k-word vocabulary (business words plus made-up words), numbers, amounts and dates, and one
chunk in ten in Chinese; the payload carries text, heading, pages, labels and 1–6 regions
with 2–8 line boxes each (about 4 KB of JSON; the largest dev-eval chunks hold about 5 KB).
Sparse vectors are real (`SparseEncoder.encode_document`). Dense vectors are not computed
with MiniLM for every chunk (100k chunks would take over an hour on 2 cores): 256 real MiniLM
embeddings of such texts serve as centres, and each chunk gets a centre plus Gaussian noise,
normalised (cosine to its centre ≈ 0.86), so the vectors cluster like real ones instead of
being uniform noise.

For each size, the same points go to:

  edge     EdgeStore (Qdrant Edge, the default store) in a temp dir, upserted in batches of
           1000, then measured in two states:
             hnsw   after `optimize()` (HNSW for the dense vectors): the default state, since
                    `scanrag ingest` calls `Index.optimize()` at its end once 10k points or
                    more arrived since the last build
             plain  before it (one plain segment, brute force): an index below 10k chunks,
                    or points added through the API since the last `scanrag ingest`;
                    measured first, for comparison (skip it with --no-plain)
           the optimise time is reported.
  client   ClientStore(path=":memory:"), qdrant-client's local mode, side by side. It scans
           every point in Python for each query, so it gets --client-queries questions and
           sizes above --client-max are skipped (the output says so).

Query latency over --queries generated questions (a tenth in Chinese), after 10 untimed ones.
For each question the two halves of `Index.search` are timed back to back:

  embed + hybrid   real MiniLM query embedding + BM25 terms, then hybrid (RRF) search, top 5
  hybrid           the search half alone
  embed only       the embedding half alone
  dense / sparse   one precomputed vector alone (edge after optimise only)

Target (issue 3): edge embed + hybrid p95 ≤ 50 ms at 100k chunks on 2 cores.

Time on 2 shared cores: about 12 minutes at the default sizes. 1M chunks is an option, not a
default: loading is linear (~30 min at ~550 points/s), the HNSW build longer (see
docs/benchmarks.md for a measured run). With --store-dir (one size, edge only) the store lives
in that directory instead of a temporary one and the run is resumable: a killed run started
again with the same arguments keeps the points already stored, goes on upserting from the
first missing batch (each batch is generated from its own seed, so batch n is the same in
every run) and adds up the upsert time in DIR/progress.json. Memory is reported as the
process's RSS and its anonymous part (RssAnon): the store maps its files, and mapped file
pages count in RSS but are the kernel's to drop, anonymous ones are not.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    DOCS,
    RESULTS,
    anon_mb,
    describe,
    finish,
    load_average,
    machine,
    pyplot,
    rss_mb,
    save_plot,
    write_json,
)

from scanrag.evaluate import percentile
from scanrag.retrieval.embedding import DenseEncoder, SparseEncoder, SparseVec
from scanrag.retrieval.store import ClientStore, EdgeStore, Store, StorePoint

DIM = 384
BATCH = 1000
CENTRES = 256
NOISE = 0.6
TOP_K = 5
TARGET_P95_MS = 50.0
SEED = 7

BUSINESS = """invoice total amount due payment date supplier customer order quantity unit price
tax net gross balance account bank transfer reference number contract agreement terms period
warehouse inventory delivery shipment freight carrier address city street postal code phone
email contact manager director department budget forecast revenue cost profit loss quarter
annual report audit committee board shareholder dividend employee salary insurance claim
policy premium coverage receipt store cashier item discount cash card credit debit refund
memo meeting schedule project deadline review approval signature witness notice resident
inspection safety gas water electricity service fee charge rate interest loan deposit
region north south east west central growth decline percent figure table summary note""".split()
CJK = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之"
    "过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前"
    "所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声"
    "全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使"
    "发票合计金额单价数量小票号联系人电话地址日期通知居民办理燃气安全检查超市收银找零"
)


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    syllables = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ar", "en")]
    words = list(dict.fromkeys(BUSINESS))
    while len(words) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in words:
            words.append(word)
    return words


class Corpus:
    """Deterministic synthetic chunks, produced in batches (100k never sit in memory)."""

    def __init__(self, seed: int = SEED) -> None:
        rng = random.Random(seed)
        self.words = vocabulary(rng)
        ranks = np.arange(1, len(self.words) + 1)
        self.p_words = (1 / ranks**1.07) / (1 / ranks**1.07).sum()
        cjk_ranks = np.arange(1, len(CJK) + 1)
        self.p_cjk = (1 / cjk_ranks) / (1 / cjk_ranks).sum()
        self.sparse = SparseEncoder()
        self.seed = seed

    def number(self, rng: random.Random) -> str:
        kind = rng.random()
        if kind < 0.4:
            return str(rng.randint(1, 99999))
        if kind < 0.7:
            return f"${rng.randint(1, 99):,}{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}"
        if kind < 0.85:
            month = rng.choice(["March", "July", "October"])
            return f"{rng.randint(1, 28)} {month} 20{rng.randint(10, 25)}"
        return f"INV-{rng.randint(10000, 99999)}"

    def text(self, rng: random.Random, np_rng: np.random.Generator) -> str:
        if rng.random() < 0.1:
            chars = np_rng.choice(len(CJK), size=rng.randint(80, 300), p=self.p_cjk)
            body = "".join(CJK[c] for c in chars)
            return f"{body[:40]}：{self.number(rng)}，{body[40:]}"
        words = [
            self.words[i]
            for i in np_rng.choice(len(self.words), rng.randint(60, 200), p=self.p_words)
        ]
        for _ in range(len(words) // 12):
            words.insert(rng.randrange(len(words)), self.number(rng))
        return " ".join(words)

    def payload(self, i: int, text: str, rng: random.Random) -> dict[str, Any]:
        doc = f"{i // 12:016x}"
        page = 1 + (i % 12) // 3
        name = f"scan_{i // 12:06d}.pdf"
        regions, start = [], 0
        pieces = np.array_split(np.arange(len(text)), rng.randint(1, 6))
        for index, piece in enumerate(p for p in pieces if len(p)):
            end = int(piece[-1]) + 1
            y = 150 + index * 260
            lines = []
            bounds = np.array_split(np.arange(start, end), rng.randint(2, 8))
            for row, span in enumerate(b for b in bounds if len(b)):
                s, e = int(span[0]), int(span[-1]) + 1
                top = y + row * 40
                lines.append(
                    {"text": text[s:e], "bbox": [150, top, 1500, top + 32], "start": s, "end": e}
                )
            regions.append(
                {
                    "region_id": f"{doc}:p{page}:r{index}",
                    "page": page,
                    "bbox": [150, y, 1500, y + 40 * len(lines)],
                    "bbox_norm": [91, y * 1000 // 2339, 907, (y + 40 * len(lines)) * 1000 // 2339],
                    "label": rng.choice(["text", "text", "table", "title", "list"]),
                    "start": start,
                    "end": end,
                    "page_width": 1654,
                    "page_height": 2339,
                    "lines": lines,
                }
            )
            start = end
        return {
            "doc_id": doc,
            "chunk": i % 12,
            "source": f"/srv/scans/archive/{name}",
            "source_name": name,
            "text": text,
            "heading": "Annual report › Operations" if i % 3 == 0 else "",
            "pages": [page],
            "labels": sorted({r["label"] for r in regions}),
            "regions": regions,
        }

    def base_texts(self, n: int) -> list[str]:
        rng, np_rng = random.Random(self.seed + 1), np.random.default_rng(self.seed + 1)
        return [self.text(rng, np_rng) for _ in range(n)]

    def batches(
        self, total: int, centres: np.ndarray, start: int = 0
    ) -> Iterator[list[StorePoint]]:
        """Batches of points `start`..`total`; each batch from its own seed, so that a
        resumed load writes the very points a full one would."""
        for first in range(start - start % BATCH, total, BATCH):
            rng = random.Random(self.seed * 1_000_003 + first)
            np_rng = np.random.default_rng([self.seed, first])
            size = min(BATCH, total - first)
            texts = [self.text(rng, np_rng) for _ in range(size)]
            noise = np_rng.normal(size=(size, DIM)).astype(np.float32) * NOISE / np.sqrt(DIM)
            dense = centres[np_rng.integers(0, len(centres), size)] + noise
            dense /= np.linalg.norm(dense, axis=1, keepdims=True)
            yield [
                StorePoint(
                    id=str(uuid.UUID(int=first + j + 1)),
                    dense=dense[j],
                    sparse=self.sparse.encode_document(texts[j]),
                    payload=self.payload(first + j, texts[j], rng),
                )
                for j in range(size)
            ]

    def questions(self, n: int) -> list[str]:
        rng, np_rng = random.Random(self.seed + 2), np.random.default_rng(self.seed + 2)
        out = []
        for q in range(n):
            if q % 10 == 9:
                chars = np_rng.choice(len(CJK), size=rng.randint(6, 14), p=self.p_cjk)
                out.append("".join(CJK[c] for c in chars) + "是多少？")
                continue
            picks = [self.words[i] for i in np_rng.choice(len(self.words), 4, p=self.p_words)]
            rare = self.words[rng.randint(100, 5000)]
            out.append(
                f"What is the {picks[0]} {rare} of {picks[1]} {self.number(rng)} for {picks[2]}?"
            )
        return out


def load(
    store: Store,
    corpus: Corpus,
    size: int,
    centres: np.ndarray,
    progress: Path | None = None,
) -> dict[str, float]:
    """Upsert `size` points. With `progress` (a JSON file beside a kept store), start after
    the points already stored and add to the upsert time recorded there."""
    done = store.count() if progress else 0
    state = json.loads(progress.read_text()) if progress and progress.exists() else {}
    spent = float(state.get("upsert_s", 0.0)) if done else 0.0
    if done:
        print(f"resuming at {done:,} points ({spent:.0f} s of upsert so far)", flush=True)
    for batch in corpus.batches(size, centres, start=done):
        started = time.perf_counter()
        store.upsert(batch)
        spent += time.perf_counter() - started
        if progress:
            stored = int(batch[-1].id.replace("-", ""), 16)
            record = {
                "points": stored,
                "upsert_s": round(spent, 2),
                "rss_mb": rss_mb(),
                "anon_mb": anon_mb(),
                "load_average": load_average(),
            }
            progress.with_suffix(".tmp").write_text(json.dumps(record) + "\n")
            progress.with_suffix(".tmp").replace(progress)
            if stored % 50_000 == 0:
                print(
                    f"  {stored:>9,} points, {spent:.0f} s upsert, RSS {record['rss_mb']:.0f} MB"
                    f" (anonymous {record['anon_mb']:.0f} MB)",
                    flush=True,
                )
    assert store.count() == size, (store.count(), size)
    return {"upsert_s": round(spent, 2), "points_per_s": round(size / spent)}


def stats(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "mean_ms": round(float(np.mean(times)), 2),
        "queries": len(times),
    }


def measure(
    store: Store,
    questions: list[str],
    dense: np.ndarray,
    sparse: list[SparseVec],
    encoder: DenseEncoder,
    one_vector: bool,
    warmup: int = 10,
) -> dict[str, dict[str, float]]:
    """Per question, what `Index.search` does, timed in two parts: embedding the question
    (MiniLM + BM25 terms), then the hybrid search. "embed + hybrid" is their sum per question;
    "hybrid" the search part. With `one_vector`, a second pass times dense and sparse alone."""
    terms = SparseEncoder()
    for question in questions[:warmup]:
        store.search(encoder.encode([question])[0], terms.encode_query(question), TOP_K)
    embed, search, total = [], [], []
    for question in questions:
        t0 = time.perf_counter()
        vector, query_terms = encoder.encode([question])[0], terms.encode_query(question)
        t1 = time.perf_counter()
        store.search(vector, query_terms, TOP_K)
        t2 = time.perf_counter()
        embed.append((t1 - t0) * 1000)
        search.append((t2 - t1) * 1000)
        total.append((t2 - t0) * 1000)
    out = {"embed + hybrid": stats(total), "hybrid": stats(search), "embed only": stats(embed)}
    if one_vector:
        for kind, run in (
            ("dense", lambda q: store.search(dense[q], None, TOP_K)),
            ("sparse", lambda q: store.search(None, sparse[q], TOP_K)),
        ):
            times = []
            for q in range(len(questions)):
                started = time.perf_counter()
                run(q)
                times.append((time.perf_counter() - started) * 1000)
            out[kind] = stats(times)
    gc.collect()
    return out


def dir_size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def measure_edge(
    args: argparse.Namespace,
    size: int,
    corpus: Corpus,
    centres: np.ndarray,
    questions: list[str],
    q_dense: np.ndarray,
    q_sparse: list[SparseVec],
    encoder: DenseEncoder,
) -> list[dict[str, Any]]:
    """Load `size` points into a fresh EdgeStore; measure it plain (unless --no-plain), then
    optimised (HNSW)."""
    results: list[dict[str, Any]] = []
    size_started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.store_dir:
            where = args.store_dir
            where.mkdir(parents=True, exist_ok=True)
        else:
            where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scanrag-speed-")))
        print(f"edge   {size:>9,} points: loading ...", flush=True)
        edge = EdgeStore(where / "qdrant", DIM)
        progress = where / "progress.json" if args.store_dir else None
        loaded = load(edge, corpus, size, centres, progress)
        loaded["rss_after_upsert_mb"], loaded["anon_after_upsert_mb"] = rss_mb(), anon_mb()
        print(
            f"edge   {size:>9,} points: loaded in {loaded['upsert_s']:.0f}s "
            f"({loaded['points_per_s']:,} points/s), RSS {rss_mb():.0f} MB "
            f"(anonymous {anon_mb():.0f} MB)",
            flush=True,
        )
        if not args.no_plain:
            plain = measure(edge, questions, q_dense, q_sparse, encoder, one_vector=False)
            results += [
                {"store": "edge", "points": size, "index": "plain", "query": kind, **figures}
                for kind, figures in plain.items()
            ]
        print(f"edge   {size:>9,} points: optimize() ...", flush=True)
        started = time.perf_counter()
        edge.optimize()
        loaded["optimize_s"] = round(time.perf_counter() - started, 2)
        loaded["rss_after_optimize_mb"], loaded["anon_after_optimize_mb"] = rss_mb(), anon_mb()
        print(
            f"edge   {size:>9,} points: optimised in {loaded['optimize_s']:.0f}s, "
            f"RSS {rss_mb():.0f} MB (anonymous {anon_mb():.0f} MB)",
            flush=True,
        )
        hnsw = measure(edge, questions, q_dense, q_sparse, encoder, one_vector=True)
        results += [
            {"store": "edge", "points": size, "index": "hnsw", "query": kind, **figures}
            for kind, figures in hnsw.items()
        ]
        loaded["disk_mb"] = dir_size_mb(where / "qdrant")
        loaded["process_rss_mb"], loaded["process_anon_mb"] = rss_mb(), anon_mb()
        loaded["wall_s"] = round(time.perf_counter() - size_started, 1)
        results.append({"store": "edge", "points": size, "load": loaded})
        edge.close()
        del edge
        gc.collect()
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    info = machine()
    started_all = time.perf_counter()
    corpus = Corpus()
    encoder = DenseEncoder()
    print(f"embedding {CENTRES} centre texts and {args.queries} questions with MiniLM ...")
    centres = encoder.encode(corpus.base_texts(CENTRES))
    questions = corpus.questions(args.queries)
    q_dense = encoder.encode(questions)
    q_sparse = [SparseEncoder().encode_query(q) for q in questions]
    client_questions = questions[: args.client_queries]
    import torch

    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for size in args.sizes:
        if "edge" in args.stores:
            results += measure_edge(
                args, size, corpus, centres, questions, q_dense, q_sparse, encoder
            )
        if "client" not in args.stores:
            continue
        if size > args.client_max:
            skipped.append(
                f"client local mode skipped at {size:,} points (--client-max {args.client_max:,}):"
                " it scans every point in Python for each query"
            )
            continue
        size_started = time.perf_counter()
        print(f"client {size:>9,} points: loading ...", flush=True)
        client = ClientStore(DIM, path=":memory:")
        loaded = load(client, corpus, size, centres)
        figures = measure(client, client_questions, q_dense, q_sparse, encoder, one_vector=False)
        results += [
            {"store": "client", "points": size, "index": "local", "query": kind, **f}
            for kind, f in figures.items()
        ]
        loaded["process_rss_mb"] = rss_mb()
        loaded["wall_s"] = round(time.perf_counter() - size_started, 1)
        results.append({"store": "client", "points": size, "load": loaded})
        client.close()
        del client
        gc.collect()

    verdicts = [
        f"edge embed + hybrid at {row['points']:,} ({row['index']}): p95 {row['p95_ms']:.1f} ms "
        f"{'meets' if row['p95_ms'] <= TARGET_P95_MS else 'MISSES'} the target "
        f"{TARGET_P95_MS:.0f} ms"
        for row in results
        if row.get("store") == "edge"
        and row.get("query") == "embed + hybrid"
        and row["points"] == max(args.sizes)
    ]
    info = finish(info)
    info["torch_threads"] = torch.get_num_threads()
    return {
        "benchmark": "search_speed",
        "command": "python bench/search_speed.py " + " ".join(args.argv),
        "date": info["date"],
        "machine": info,
        "versions": {
            "qdrant-edge-py": version("qdrant-edge-py"),
            "qdrant-client": version("qdrant-client"),
            "sentence-transformers": version("sentence-transformers"),
        },
        "setup": {
            "dense": f"{CENTRES} MiniLM centres + noise {NOISE} (cos≈0.86), 384-d cosine",
            "sparse": "SparseEncoder BM25 terms, IDF modifier",
            "batch": BATCH,
            "top_k": TOP_K,
            "queries": args.queries,
            "client_queries": args.client_queries,
            "client_max": args.client_max,
        },
        "target": {"edge_embed_hybrid_p95_ms_at_100k": TARGET_P95_MS},
        "results": results,
        "notes": skipped + verdicts,
        "total_s": round(time.perf_counter() - started_all),
    }


def table(result: dict[str, Any]) -> str:
    rows = result["results"]
    out = [
        f"search speed: synthetic chunks, top {TOP_K}; {describe(result['machine'])}",
        "",
        f"upsert (batches of {BATCH}), optimize, memory",
        f"{'store':<7} {'points':>9} {'upsert s':>9} {'points/s':>9} {'optimize s':>11}"
        f" {'disk MB':>8} {'RSS MB':>7} {'wall s':>7}",
    ]
    for row in rows:
        if "load" in row:
            load_ = row["load"]
            optimize = f"{load_['optimize_s']:>11.1f}" if "optimize_s" in load_ else f"{'-':>11}"
            disk = f"{load_['disk_mb']:>8.0f}" if "disk_mb" in load_ else f"{'-':>8}"
            out.append(
                f"{row['store']:<7} {row['points']:>9,} {load_['upsert_s']:>9.1f} "
                f"{load_['points_per_s']:>9,} {optimize} {disk} "
                f"{load_.get('process_rss_mb', 0):>7.0f} {load_.get('wall_s', 0):>7.0f}"
            )
    order = {"hnsw": 0, "plain": 1, "local": 2}
    queries = sorted(
        (row for row in rows if "query" in row),
        key=lambda row: (row["points"], row["store"] != "edge", order[row["index"]]),
    )
    out += [
        "",
        "query latency (ms); edge hnsw is the default state after `scanrag ingest`",
        f"{'store':<7} {'points':>9} {'index':<6} {'query':<15} {'n':>4} "
        f"{'p50':>8} {'p95':>8} {'p99':>8}",
    ]
    for row in queries:
        out.append(
            f"{row['store']:<7} {row['points']:>9,} {row['index']:<6} {row['query']:<15} "
            f"{row['queries']:>4} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f}"
        )
    out += result["notes"]
    out.append(f"run time {result['total_s']} s")
    return "\n".join(out)


def others(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text())
        for path in args.also
        if path.exists() and path.resolve() != args.out.resolve()
    ]


def plot(result: dict[str, Any], path: Path, extra: list[dict[str, Any]] = ()) -> None:
    """p50/p95/p99 against the number of chunks, both stores, for Index.search and the
    store's search alone; rows of `extra` results (other sizes or stores) join in."""
    plt = pyplot()
    rows = list(result["results"])
    for other in extra:
        seen = {(r.get("store"), r["points"], r.get("index"), r.get("query")) for r in rows}
        rows += [
            r
            for r in other["results"]
            if (r.get("store"), r["points"], r.get("index"), r.get("query")) not in seen
        ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    series = (
        ("edge", "hnsw", "#1f77b4"),
        ("edge", "plain", "#ff7f0e"),
        ("client", "local", "#d62728"),
    )
    marks = (("p50_ms", "o", "-"), ("p95_ms", "s", "--"), ("p99_ms", "^", ":"))
    for axis, kind in zip(axes, ("embed + hybrid", "hybrid"), strict=True):
        for store, index, colour in series:
            series_rows = sorted(
                (
                    r
                    for r in rows
                    if r.get("store") == store
                    and r.get("index") == index
                    and r.get("query") == kind
                ),
                key=lambda r: r["points"],
            )
            if not series_rows:
                continue
            name = {
                "hnsw": "Edge, HNSW (default)",
                "plain": "Edge, plain segment",
                "local": "qdrant-client local",
            }[index]
            for key, marker, line in marks:
                axis.plot(
                    [r["points"] for r in series_rows],
                    [r[key] for r in series_rows],
                    marker=marker,
                    linestyle=line,
                    color=colour,
                    label=f"{name} {key[:3]}",
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("chunks in the collection")
        axis.grid(alpha=0.3, which="both")
        axis.set_title(
            "Index.search: MiniLM + BM25 query, hybrid search"
            if kind == "embed + hybrid"
            else "the store's hybrid search alone",
            fontsize=9,
        )
    axes[0].set_ylabel("latency (ms, log scale)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_plot(fig, path, f"Query latency vs collection size, top {TOP_K}", result["machine"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--client-queries", type=int, default=50, help="questions for qdrant-client local mode"
    )
    parser.add_argument("--client-max", type=int, default=10_000)
    parser.add_argument("--no-plain", action="store_true", help="skip the unoptimised state")
    parser.add_argument(
        "--stores", nargs="+", choices=["edge", "client"], default=["edge", "client"]
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "search_speed.json")
    parser.add_argument("--plot", type=Path, default=DOCS / "search_speed.png")
    parser.add_argument("--plot-only", action="store_true", help="re-draw the plot from --out")
    parser.add_argument(
        "--store-dir",
        type=Path,
        help="keep the edge store in this directory and resume a killed run there "
        "(one size, --stores edge)",
    )
    parser.add_argument(
        "--also",
        type=Path,
        nargs="*",
        default=[
            RESULTS / "search_speed_200k.json",
            RESULTS / "search_speed_1m.json",
            RESULTS / "search_speed_client_100k.json",
        ],
        help="other result files whose rows join the plot, when they exist",
    )
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.plot, others(args))
        return 0
    if args.queries < 10 or args.client_queries < 1:
        parser.error("--queries must be at least 10 and --client-queries at least 1")
    if args.store_dir and (len(args.sizes) != 1 or args.stores != ["edge"]):
        parser.error("--store-dir takes one size and --stores edge")
    result = run(args)
    print()
    print(table(result))
    write_json(args.out, result)
    plot(result, args.plot, others(args))
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
