"""The localization result (contract of docs/formats.md) and the trajectory every run records.

A result is what every localizer returns, LLM agent and retrieval default alike: ranked files, ranked
entity ids, and the Agentless-compatible ``found_related_locs`` so existing repair pipelines read it.
A trajectory is the full record of one run, written as JSON and rendered by ``reposearcher show``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reposearcher_plugin.index.locations import SEPARATOR, file_of, name_of, unique
from reposearcher_plugin.index.names import utf8_value

TRAJECTORY_FORMAT = "reposearcher-trajectory/1"
# Names written to found_related_locs: the ToolTrain and CoSIL evaluation scripts keep the first five
# names they read there, and the published Agentless-style outputs list a median of five.
RELATED_LOCS_NAMES = 5


@dataclass
class ToolCallRecord:
    """One tool call of one step, as parsed from the model and as answered."""

    id: str
    name: str
    arguments: dict[str, Any] | None  # None when the arguments were not valid JSON
    raw_arguments: str  # exactly as the model wrote them
    observation: str
    ok: bool
    repeated: bool = False  # an identical earlier call's observation was returned
    latency_s: float = 0.0


@dataclass
class Step:
    """One model turn: what it was sent (new messages only), what it said, and what the tools answered."""

    index: int
    stage: str  # "search", or the tooltrain profile's "files" / "functions"
    content: str  # the reply's text (hermes tool calls included, as written)
    calls: list[ToolCallRecord] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    note: str | None = None  # e.g. "budget exhausted: max_turns", "parse error: ..."
    error: str | None = None  # an LLM error that ended the run


@dataclass
class Trajectory:
    instance_id: str
    model: str
    profile: str
    tool_format: str  # "native", "hermes", or "none" for the retrieval default
    issue: str
    repo: str = ""
    steps: list[Step] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # the final conversation, OpenAI form
    answer: str = ""  # the text the final answer was parsed from
    evidence: dict[str, Any] = field(default_factory=dict)  # what a non-LLM localizer based its ranking on
    fallback: str | None = None  # set when the result is not the model's answer, and why
    wall_s: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # UTF-8-clean (index/names.py): whatever a model wrote, every writer of it can encode it
        return utf8_value({"format": TRAJECTORY_FORMAT, **asdict(self)})

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        if data.get("format") != TRAJECTORY_FORMAT:
            raise ValueError(f"not a RepoSearcher trajectory (format {data.get('format')!r})")
        fields = {key: value for key, value in data.items() if key != "format"}
        steps = []
        for step in fields.pop("steps", []):
            calls = [ToolCallRecord(**call) for call in step.pop("calls", [])]
            steps.append(Step(**step, calls=calls))
        return cls(**fields, steps=steps)

    @classmethod
    def read(cls, path: str | Path) -> Trajectory:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class LocalizationResult:
    """Ranked files and entity ids for one issue (entity ids: ``path::Class.method``; docs/formats.md)."""

    instance_id: str
    model: str
    files: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    trajectory: Trajectory | str | None = None  # inline, or the path it was written to
    error: str | None = None

    def __post_init__(self) -> None:
        self.locations = unique(self.locations)
        # every located entity's file is a found file, after the files ranked explicitly
        self.files = unique([*self.files, *(file_of(location) for location in self.locations)])

    def related_locs(self) -> dict[str, list[str]]:
        """Agentless ``found_related_locs``: the top :data:`RELATED_LOCS_NAMES` names of the ranking, per
        file (in the order the files first appear), one string of ``function:`` lines per file.

        Why only the top five: Agentless, CoSIL and the ToolTrain evaluation all need this field to be an
        object keyed by file (they call ``.items()`` and use each key as the file of its lines), so it
        cannot interleave files the way the ranking does. The dict-order readers (ToolTrain's
        ``FLEval.py``, CoSIL's ``FLEvalNew.py``) read the names file by file and keep the first five;
        given every location, a file's later, low-ranked names would come before the next file's best
        one. Cut at the fifth name, they read the ranking's top five names, the first one first (the
        other four grouped by file, which only metrics of their order can tell: recall@3, MAP, MRR,
        nDCG). The whole ranking is in ``locations``.
        """
        lines: dict[str, list[str]] = {}
        names: set[str] = set()
        for location in self.locations:
            name = name_of(location)
            if not name:
                continue
            if name not in names and len(names) == RELATED_LOCS_NAMES:
                break
            names.add(name)  # by name alone, as those readers count (one name in two files is one)
            lines.setdefault(file_of(location), []).append(f"function: {name}")
        return {path: ["\n".join(found)] for path, found in lines.items()}

    def to_dict(self) -> dict[str, Any]:
        trajectory = self.trajectory.to_dict() if isinstance(self.trajectory, Trajectory) else self.trajectory
        row: dict[str, Any] = {
            "instance_id": self.instance_id,
            "found_files": self.files,
            "found_related_locs": self.related_locs(),
            "locations": [location for location in self.locations if SEPARATOR in location],
            "model": self.model,
            "usage": self.usage,
            "trajectory": trajectory,
        }
        if self.error:
            row["error"] = self.error
        # paths are repository paths already (index/names.py); model-written text may still hold a lone
        # surrogate, which would stop the JSON-lines writer, the MCP transport and every later rerun
        return utf8_value(row)
