"""The bot's Prometheus metrics, on the standard ``prometheus_client``.

Every metric the project exports is declared in ``BotMetrics`` below, in one place, so the
``/metrics`` page and the code that counts agree on names and labels; to add one, add an
attribute there. The thin wrappers keep the call sites short (``inc(kind=…)``, ``value(…)``) and
add what the bot needs on top of the library: gauges computed at scrape time by an async source
(jobs by status, counted in the store). The library brings the process and Python runtime
metrics (CPU, memory, file descriptors, garbage collection) and ``lorabot_build_info``.
"""

from __future__ import annotations

import inspect
import logging
import platform
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, GCCollector, Info, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

log = logging.getLogger(__name__)

# The classic text format: what every Prometheus version and most scrapers read.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Classic names only (the library would also take UTF-8 names that older scrapers refuse).
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# A "<name>_created" series beside every counter and histogram doubles the page for a timestamp
# nobody graphs; the bot's counters start with the process (process_start_time_seconds).
prometheus_client.disable_created_metrics()

LabelValues = tuple[str, ...]
# A gauge's values computed at scrape time (e.g. jobs by status, counted in the store).
GaugeSource = Callable[[], Mapping[LabelValues, float] | Awaitable[Mapping[LabelValues, float]]]


class Metric:
    """One metric family of ``registry``; ``sample`` is the name its plain value is exposed under."""

    def __init__(self, registry: CollectorRegistry, name: str, labelnames: Sequence[str], sample: str) -> None:
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__") or label == "le":
                raise ValueError(f"invalid label name {label!r} for {name}")
        self.name = name
        self.labelnames = tuple(labelnames)
        self._registry = registry
        self._sample = sample

    def _checked(self, labels: Mapping[str, str]) -> dict[str, str]:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return {name: str(labels[name]) for name in self.labelnames}

    def _child(self, family: Any, labels: Mapping[str, str]) -> Any:
        checked = self._checked(labels)
        return family.labels(**checked) if self.labelnames else family

    def value(self, **labels: str) -> float:
        """The current value (0 for a label set never used)."""
        found = self._registry.get_sample_value(self._sample, self._checked(labels))
        return found if found is not None else 0.0


class Counter(Metric):
    def __init__(self, registry: CollectorRegistry, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(registry, name, labelnames, sample=name if name.endswith("_total") else f"{name}_total")
        self._family = prometheus_client.Counter(name, documentation, self.labelnames, registry=registry)

    def inc(self, amount: float = 1.0, /, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self._child(self._family, labels).inc(amount)


class Gauge(Metric):
    def __init__(self, registry: CollectorRegistry, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(registry, name, labelnames, sample=name)
        self._family = prometheus_client.Gauge(name, documentation, self.labelnames, registry=registry)
        self._source: GaugeSource | None = None

    def set(self, value: float, /, **labels: str) -> None:
        self._child(self._family, labels).set(value)

    def inc(self, amount: float = 1.0, /, **labels: str) -> None:
        self._child(self._family, labels).inc(amount)

    def dec(self, amount: float = 1.0, /, **labels: str) -> None:
        self._child(self._family, labels).dec(amount)

    def set_source(self, source: GaugeSource | None) -> None:
        """Compute the values at scrape time instead of keeping them (replaces set values)."""
        self._source = source

    async def collect_source(self) -> None:
        """Refresh from the source before a scrape; a failing source leaves the metric out."""
        if self._source is None:
            return
        try:
            produced = self._source()
            values = await produced if inspect.isawaitable(produced) else produced
            for key in values:
                if len(key) != len(self.labelnames):
                    raise ValueError(f"{self.name} source gave labels {key} for {self.labelnames}")
        except Exception:
            # A failing source must not take the whole page down.
            log.warning("Could not collect metric %s", self.name, exc_info=True)
            self._family.clear()
            return
        self._family.clear()
        for key, value in values.items():
            self.set(value, **dict(zip(self.labelnames, key, strict=True)))


class Histogram(Metric):
    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        super().__init__(registry, name, labelnames, sample=f"{name}_count")
        self._family = prometheus_client.Histogram(
            name, documentation, self.labelnames, registry=registry, buckets=tuple(buckets)
        )

    def observe(self, value: float, /, **labels: str) -> None:
        self._child(self._family, labels).observe(value)

    @contextmanager
    def time(self, **labels: str) -> Iterator[None]:
        with self._child(self._family, labels).time():
            yield

    def count(self, **labels: str) -> int:
        return int(self.value(**labels))


_M = TypeVar("_M", bound=Metric)


class Registry:
    """The metrics of one process (a fresh one per ``BotMetrics``, so tests never share counts)."""

    def __init__(self) -> None:
        self.collectors = CollectorRegistry()
        self._metrics: dict[str, Metric] = {}

    def _add(self, name: str, make: Callable[[], _M]) -> _M:
        if name in self._metrics:
            raise ValueError(f"metric {name} is already registered")
        self._metrics[name] = metric = make()
        return metric

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._add(name, lambda: Counter(self.collectors, name, documentation, labelnames))

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self._add(name, lambda: Gauge(self.collectors, name, documentation, labelnames))

    def histogram(
        self, name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        return self._add(name, lambda: Histogram(self.collectors, name, documentation, labelnames, buckets))

    async def render(self) -> str:
        """The page in text format 0.0.4, gauges with a source read first."""
        for metric in self._metrics.values():
            if isinstance(metric, Gauge):
                await metric.collect_source()
        return generate_latest(self.collectors).decode("utf-8")


def _package_version() -> str:
    try:
        return version("lora-trainer-bot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class BotMetrics:
    """Every metric the bot exports. Other parts count through these attributes."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = r = registry or Registry()
        # What the library measures for any Python process: CPU, memory, open files, GC, version.
        ProcessCollector(registry=r.collectors)
        PlatformCollector(registry=r.collectors)
        GCCollector(registry=r.collectors)
        Info("lorabot_build", "The running version of the bot.", registry=r.collectors).info(
            {"version": _package_version(), "python": platform.python_version()}
        )

        self.jobs = r.gauge("lorabot_jobs", "Training jobs by status (collected from the store).", ["status"])
        self.callbacks_received = r.counter("lorabot_callbacks_received_total", "Orchestrator callbacks received.")
        self.callbacks_rejected = r.counter(
            "lorabot_callbacks_rejected_total", "Orchestrator callbacks not acted on, by reason.", ["reason"]
        )
        self.orchestrator_calls = r.counter(
            "lorabot_orchestrator_calls_total", "Calls made to the Civitai orchestrator, by operation.", ["operation"]
        )
        self.orchestrator_errors = r.counter(
            "lorabot_orchestrator_errors_total", "Failed orchestrator calls, by kind of failure.", ["kind"]
        )
        self.discord_send_failures = r.counter(
            "lorabot_discord_send_failures_total", "Discord messages or edits that could not be sent.", ["kind"]
        )
        self.refresh_seconds = r.histogram(
            "lorabot_refresh_seconds", "Time to refresh one job from the orchestrator and act on the changes."
        )
        self.dataset_downloads = r.counter(
            "lorabot_dataset_downloads_total", "Requests for signed dataset URLs, by outcome.", ["outcome"]
        )
        self.retention_removed = r.counter(
            "lorabot_retention_removed_total", "Expired things the periodic cleanup removed, by kind.", ["kind"]
        )

    def count_orchestrator_call(self, operation: str, error_kind: str | None) -> None:
        """The orchestrator client's ``metrics`` callback: one call per HTTP attempt."""
        self.orchestrator_calls.inc(operation=operation)
        if error_kind is not None:
            self.orchestrator_errors.inc(kind=error_kind)
