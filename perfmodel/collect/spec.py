"""Campaign specification: the framework x network x threads x repeat matrix and how to measure it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from perfmodel.errors import PerfmodelError, check_choice

COUNTER_SOURCES = ("auto", "perf", "valgrind", "software")
DEFAULT_GEOMETRY = {"I1": "32768,4,64", "D1": "32768,4,64", "LL": "524288,16,64"}  # Cortex-A53-like


@dataclass(frozen=True)
class Cell:
    """One point of the campaign matrix, measured in one fresh worker process."""

    framework: str
    network: str
    threads: int
    repeat: int
    counter_source: str

    @property
    def cell_id(self) -> str:
        return f"{self.framework}__{self.network}__t{self.threads}__r{self.repeat}__{self.counter_source}"


@dataclass
class CampaignSpec:
    """What to measure. Defaults are the study's setup at a small size."""

    frameworks: list[str] = field(default_factory=lambda: ["tensorflow", "litert", "onnxruntime", "opencv"])
    networks: list[str] = field(default_factory=lambda: ["squeezenet1_1"])
    threads: list[int] = field(default_factory=lambda: [1])
    images: int = 50
    image_folder: str | None = None
    repeats: int = 1
    warmup_images: int = 3
    warmup_min_s: float = 0.5
    counters: str = "auto"
    geometry: dict = field(default_factory=lambda: dict(DEFAULT_GEOMETRY))
    valgrind_images: int = 3
    sampler_period_s: float = 0.1
    seed: int = 0
    cell_timeout_s: float = 3600.0

    def validate(self) -> "CampaignSpec":
        from perfmodel.runners import FRAMEWORKS
        from perfmodel.zoo import network_names

        if not self.frameworks or not self.networks or not self.threads:
            raise PerfmodelError("a campaign needs at least one framework, network and thread count")
        for fw in self.frameworks:
            check_choice("framework", fw, FRAMEWORKS)
        for net in self.networks:
            check_choice("network", net, network_names())
        for t in self.threads:
            if int(t) < 1:
                raise PerfmodelError(f"thread count must be >= 1, got {t}")
        check_choice("counter source", self.counters, COUNTER_SOURCES)
        if self.images < 1:
            raise PerfmodelError(f"images must be >= 1, got {self.images}")
        if self.repeats < 1:
            raise PerfmodelError(f"repeats must be >= 1, got {self.repeats}")
        if not 0.01 <= self.sampler_period_s <= 10:
            raise PerfmodelError(f"sampler period must be between 0.01 and 10 s, got {self.sampler_period_s}")
        if self.image_folder is not None and not Path(self.image_folder).is_dir():
            raise PerfmodelError(f"image folder {self.image_folder!r} does not exist")
        return self

    def cells(self) -> list[Cell]:
        sources = [self.counters]
        return [
            Cell(fw, net, int(t), r, src)
            for net in self.networks
            for fw in self.frameworks
            for t in self.threads
            for r in range(self.repeats)
            for src in sources
        ]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CampaignSpec":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise PerfmodelError(f"unknown campaign spec keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
