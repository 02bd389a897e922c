"""Campaign specification: the framework x network x threads x repeat matrix and how to measure it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from perfmodel.errors import PerfmodelError, check_choice
from perfmodel.readings import COUNTER_SOURCES  # a cell's id ends with its counter source (data.cells)

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
    power_log: str | None = None  # external power-analyzer log (timestamped CSV), aligned by the offset
    power_log_offset_s: float = 0.0
    seed: int = 0
    cell_timeout_s: float = 3600.0
    #: also run the valgrind pass (one simulated cell per framework x network) next to the timing cells
    simulate: bool = False

    def validate(self) -> "CampaignSpec":
        from perfmodel.runners import FRAMEWORKS
        from perfmodel.zoo import network_names

        if not self.frameworks or not self.networks or not self.threads:
            raise PerfmodelError("a campaign needs at least one framework, network and thread count")
        # a value given twice would measure the same cell twice, the second overwriting the first
        self.frameworks, self.networks = unique(self.frameworks), unique(self.networks)
        self.threads = unique(self.threads)
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
        check_power_log(self.power_log, self.power_log_offset_s)
        if self.image_folder is not None and not Path(self.image_folder).is_dir():
            raise PerfmodelError(f"image folder {self.image_folder!r} does not exist")
        if self.valgrind_images < 1:
            raise PerfmodelError(f"valgrind images must be >= 1, got {self.valgrind_images}")
        if self.warmup_images < 0 or not self.warmup_min_s >= 0:
            raise PerfmodelError("warm-up images and seconds must be >= 0")
        if not self.cell_timeout_s > 0:
            raise PerfmodelError(f"cell timeout must be > 0 s, got {self.cell_timeout_s}")
        self.cache_geometry()
        return self

    def cache_geometry(self):
        """The simulated cache hierarchy of :attr:`geometry` (``{"I1"|"D1"|"LL": "size,assoc,line"}``)."""
        return geometry_from_dict(self.geometry)

    @property
    def timing_source(self) -> str | None:
        """Counter source of the timing cells (None when the campaign is a valgrind pass only)."""
        return None if self.counters == "valgrind" else self.counters

    @property
    def runs_valgrind(self) -> bool:
        return self.counters == "valgrind" or self.simulate

    def cells(self) -> list[Cell]:
        """Timing cells (one per framework x network x threads x repeat), then, for a valgrind pass, one
        simulated cell per framework x network (threads=1, repeat 0: the simulation is deterministic)."""
        out: list[Cell] = []
        frameworks, networks = unique(self.frameworks), unique(self.networks)
        if self.timing_source is not None:
            out += [Cell(fw, net, t, r, self.counters)
                    for net in networks for fw in frameworks
                    for t in unique(int(t) for t in self.threads) for r in range(self.repeats)]
        if self.runs_valgrind:
            out += [Cell(fw, net, 1, 0, "valgrind") for net in networks for fw in frameworks]
        return out

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

    def measurement(self) -> dict:
        """The fields that change how a cell is measured (two runs differing in them are not comparable)."""
        d = self.to_dict()
        return {k: d[k] for k in MEASUREMENT_FIELDS if k in d}


def unique(values) -> list:
    """``values`` without repeats, first occurrence kept, in order."""
    return list(dict.fromkeys(values))


def check_power_log(power_log: str | None, offset_s: float = 0.0):
    """Refuse a power-analyzer log that does not exist or does not parse (the parser's message), and a
    clock offset that is not a finite number of seconds; return the parsed log (None without one)."""
    import math

    try:
        offset = float(offset_s)
    except (TypeError, ValueError):
        raise PerfmodelError(f"power-log offset must be a number of seconds, got {offset_s!r}") from None
    if not math.isfinite(offset):
        raise PerfmodelError(f"power-log offset must be a finite number of seconds, got {offset_s!r}")
    if power_log is None:
        return None
    if not Path(power_log).is_file():
        raise PerfmodelError(f"power log {power_log!r} does not exist")
    from perfmodel.sensors.powerlog import load_power_log

    return load_power_log(power_log)  # InputFileError with the parser's message when it does not parse


#: spec fields that change what a cell's records mean; the matrix (frameworks, networks, threads,
#: repeats), the timeout and ``simulate`` may change between runs into one data set.
MEASUREMENT_FIELDS = ("images", "image_folder", "warmup_images", "warmup_min_s", "counters", "geometry",
                      "valgrind_images", "sampler_period_s", "seed")


def spec_differences(old: dict | None, new: dict) -> list[str]:
    """Differences in :data:`MEASUREMENT_FIELDS` between two spec dicts (empty when comparable)."""
    if not old:
        return []
    diffs = []
    for k in MEASUREMENT_FIELDS:
        if k in old and old.get(k) != new.get(k):
            diffs.append(f"{k}: {json.dumps(old.get(k), sort_keys=True)} != {json.dumps(new.get(k), sort_keys=True)}")
    return diffs


def geometry_from_dict(geometry: dict):
    """``{"I1": "32768,4,64", "D1": ..., "LL": ...}`` -> a validated :class:`CacheGeometry`."""
    from perfmodel.counters.valgrind import CacheGeometry, CacheLevel, _size

    levels = {}
    for key, attr in (("I1", "l1i"), ("D1", "l1d"), ("LL", "ll")):
        text = (geometry or {}).get(key, DEFAULT_GEOMETRY[key])
        nums = [n.strip() for n in str(text).split(",")]
        if len(nums) != 3:
            raise PerfmodelError(f"cache geometry {key}={text!r}: expected size,assoc,line")
        try:
            levels[attr] = CacheLevel(_size(nums[0]), int(nums[1]), int(nums[2]))
        except ValueError as exc:
            raise PerfmodelError(f"cache geometry {key}={text!r}: {exc}") from None
    unknown = set(geometry or {}) - {"I1", "D1", "LL"}
    if unknown:
        raise PerfmodelError(f"cache geometry: unknown level(s) {', '.join(sorted(unknown))} (use I1, D1, LL)")
    name = "cortex-a53" if all(levels[a].arg() == DEFAULT_GEOMETRY[k]
                               for k, a in (("I1", "l1i"), ("D1", "l1d"), ("LL", "ll"))) else "custom"
    return CacheGeometry(name=name, **levels).validate()


def parse_geometry(text: str | None) -> dict:
    """``"I1=32K,4,64;D1=32K,4,64;LL=512K,16,64"`` (any subset; ``L1=`` sets I1 and D1; ``L2=`` is LL)
    -> the spec's geometry dict with sizes in bytes; None/empty gives the default (Cortex-A53-like)."""
    out = dict(DEFAULT_GEOMETRY)
    if not text:
        return out
    from perfmodel.counters.valgrind import _size

    for chunk in filter(None, (c.strip() for c in text.replace(" ", "").split(";"))):
        key, sep, val = chunk.partition("=")
        key = key.upper()
        nums = val.split(",")
        if not sep or len(nums) != 3:
            raise PerfmodelError(f"--geometry {chunk!r}: expected LEVEL=size,assoc,line (e.g. LL=512K,16,64)")
        try:
            norm = f"{_size(nums[0])},{int(nums[1])},{int(nums[2])}"
        except ValueError:
            raise PerfmodelError(f"--geometry {chunk!r}: size, associativity and line must be numbers") from None
        keys = {"L1": ("I1", "D1"), "I1": ("I1",), "L1I": ("I1",), "D1": ("D1",), "L1D": ("D1",),
                "LL": ("LL",), "L2": ("LL",), "LLC": ("LL",)}.get(key)
        if keys is None:
            raise PerfmodelError(f"--geometry: unknown cache level {key!r} (use I1, D1, L1, LL)")
        for k in keys:
            out[k] = norm
    geometry_from_dict(out)
    return out


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|m|min|h)?\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """``"6m"``, ``"90s"``, ``"1.5h"``, ``"360"`` (seconds) -> seconds (> 0)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise PerfmodelError(f"bad duration {text!r}: use seconds or a number with s, m or h (6m, 90s, 1h)")
        unit = (m.group(2) or "s").lower()
        value = float(m.group(1)) * {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]
    if not value > 0 or value != value or value == float("inf"):
        raise PerfmodelError(f"duration must be a positive number of seconds, got {text!r}")
    return value
