"""Prometheus metrics: request counts and latencies per route, ingest counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ..retrieval.reports import IngestReport


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "scanrag_http_requests_total",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "scanrag_http_request_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.files = Counter(
            "scanrag_ingest_files_total",
            "Files processed by ingest jobs.",
            ["status"],
            registry=self.registry,
        )
        self.pages = Counter(
            "scanrag_ingest_pages_total", "Pages parsed by ingest jobs.", registry=self.registry
        )

    def record_ingest(self, report: IngestReport) -> None:
        for status in ("added", "updated", "unchanged", "removed", "failed"):
            count = getattr(report, status)
            if count:
                self.files.labels(status=status).inc(count)
        self.pages.inc(report.pages)

    def render(self) -> bytes:
        return generate_latest(self.registry)
