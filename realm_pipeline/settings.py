"""Pydantic models of `configs/` and the loader that turns a bad file into one clear message."""

from __future__ import annotations

import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_DIR_ENV = "REALM_CONFIG_DIR"
HOME_ENV = "REALM_HOME"
# The defaults shipped inside the package. In the source tree realm_pipeline/configs is a symlink to the
# top-level configs/ (the one editable copy); a wheel holds the files themselves (package-data).
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent / "configs"


# Shapes of API keys and tokens (OpenAI, Hugging Face, GitHub, Slack, AWS, or 32+ bare letters and digits):
# never echoed into a terminal or a CI log, whichever field they were pasted into.
_SECRET_VALUE = re.compile(
    r"(?:sk-|hf_|ghp_|gho_|github_pat_|xox[abpr]-|AKIA)[A-Za-z0-9_\-]{8,}|\b[A-Za-z0-9]{32,}\b"
)


def redact_text(text: str) -> str:
    """The text with every key-shaped token replaced by <redacted>."""
    return _SECRET_VALUE.sub("<redacted>", text)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, line, field and value (keys redacted)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


class _Strict(BaseModel):
    # Unknown keys are refused: a typo in a YAML key must not be silently ignored. No config number means
    # anything as .inf or .nan (a budget, a multiplier, a size), so YAML's infinities are refused everywhere.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---------------------------------------------------------------- realm.yaml


class Progression(_Strict):
    level_up_accuracy: float = Field(0.80, gt=0, le=1)
    evals_required: int = Field(3, ge=1, le=100)
    maxed_out_window: int = Field(6, ge=2, le=1000)
    maintenance_multiplier_max: float = Field(2.0, gt=0)
    min_trend: float = Field(0.005, ge=0, lt=1)  # accuracy slope per eval above which a level is "climbing"
    min_trend_points: int = Field(3, ge=2, le=1000)  # no trend is judged from fewer evals
    maintenance_min: int = Field(3, ge=1, le=1000)  # maintenance segments tried before a cap is declared
    # forgetting (evaluation/cap_rule.py: what the evals lost, as samples) or multiplier (the rule before
    # issue 37, maintenance tokens over earning tokens; a baseline)
    cap_rule: Literal["forgetting", "multiplier"] = "forgetting"


class Regression(_Strict):
    tau: float = Field(0.05, gt=0, lt=1)


class LeaderboardSettings(_Strict):
    vote_minimum: int = Field(5, ge=1)
    price_per_gpu_hour: float | None = Field(None, gt=0)


class EvalSettings(_Strict):
    batch_size: int = Field(32, ge=1, le=4096)
    # A ceiling only: each level generates its longest reference answer (hero's tokens) + the margin,
    # and a level that needs more than the ceiling is refused (lm/budgets.py).
    max_new_tokens: int = Field(2048, ge=1, le=65_536)
    answer_margin_tokens: int = Field(4, ge=1, le=1024)  # the end marker and a little slack


class SensorSettings(_Strict):
    max_runs_per_tick: int = Field(4, ge=1, le=1000)


class CampaignSettings(_Strict):
    active_heroes: list[str] = Field(default_factory=lambda: ["tiny"])


class ClusterSettings(_Strict):
    # read only in cluster mode ($REALM_DAGSTER_PG_URL set): the embedded instance keeps its one GPU slot
    gpus: int = Field(1, ge=1, le=4096)  # the `gpu` pool's limit: GPUs the cluster's machines have in all


class RealmConfig(_Strict):
    """`configs/realm.yaml`: thresholds and caps shared by every hero."""

    progression: Progression = Progression()
    regression: Regression = Regression()
    leaderboard: LeaderboardSettings = LeaderboardSettings()
    eval: EvalSettings = EvalSettings()
    sensors: SensorSettings = SensorSettings()
    campaign: CampaignSettings = CampaignSettings()
    cluster: ClusterSettings = ClusterSettings()


# ---------------------------------------------------------------- skills, profiles, heroes


MAX_EVAL_ITEMS_PER_LEVEL = 1000


class SkillConfig(_Strict):
    """`configs/skills/<name>.yaml`: which generator, the campaign's level cap, eval set size."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    display_name: str
    level_cap: int = Field(ge=1)
    # Every level's eval set is built, stored and scored on every checkpoint: past this, a campaign's evals
    # outweigh its training and building the sets alone takes hours.
    eval_items_per_level: int = Field(50, ge=1, le=MAX_EVAL_ITEMS_PER_LEVEL)
    # How its eval sets are scored: realm's exact scorer (every part of the answer) or, for a skill with
    # one, the reference system's rule (the response contains the expected result). Part of the protocol.
    scoring: Literal["exact", "reference"] = "exact"


Method = Literal["full", "lora", "qlora", "galore"]
LrSchedule = Literal["restart", "carry", "continuous", "constant"]
# Schedules that carry the optimizer state from the parent checkpoint into the next segment.
CARRYING_SCHEDULES = ("carry", "continuous", "constant")
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw", "muon"]


class MemoryProfile(_Strict):
    """`configs/memory_profiles/<name>.yaml`: how a hero is fitted onto a device."""

    name: str
    device: Literal["cpu", "cuda"]
    vram_gb: float | None = Field(None, gt=0)
    method: Method
    optimizer: Optimizer
    dtype: Literal["float32", "bfloat16", "float16"]
    gradient_checkpointing: bool = False
    deepspeed: Literal["zero2", "zero3_offload"] | None = None
    num_gpus: int = Field(1, ge=1, le=1024)
    # Where a segment trains. `subprocess`: a Dagster Pipes subprocess that dies with its launcher and
    # hands the GPU back when it exits (DeepSpeed's launcher needs one). `in_process`: inside the run's
    # own process, with no second interpreter to import torch and transformers (under `realm campaign`
    # they are loaded already): a tiny CPU segment's wall time is then its training.
    launch: Literal["subprocess", "in_process"] = "subprocess"

    @field_validator("launch")
    @classmethod
    def _deepspeed_needs_its_launcher(cls, launch: str, info: Any) -> str:
        if launch == "in_process" and info.data.get("deepspeed") is not None:
            raise ValueError(
                f"DeepSpeed ({info.data['deepspeed']}) starts its ranks through its own launcher: use 'subprocess'"
            )
        return launch


class TinyBase(_Strict):
    kind: Literal["config"]
    config: dict[str, int | float | str | bool]


class PretrainedBase(_Strict):
    kind: Literal["pretrained"]
    model_id: str
    path: str | None = None


class SimulatedBase(_Strict):
    """`base.kind: simulated`: a stand-in hero whose capacity is known (realm_pipeline.simulation.hero).

    Only the model is simulated: its segments consume the real mix and its evals the real items. The
    fields are SimParams'; their ranges are SimParams' own, checked when the hero is loaded."""

    kind: Literal["simulated"]
    base_tokens: float = 20_000.0
    growth: float = 1.5
    transfer: float = 0.3
    interference: float = 0.004
    cross_skill: float = 0.0
    relearn: float = 0.5
    capacity: float | None = None
    capacities: dict[str, float] = Field(default_factory=dict)
    size_growth: float = 1.3
    plateau: float = 1.0
    plateau_from: int = 1
    plateau_delay: float = 0.0
    shocks: list[tuple[int, float]] = Field(default_factory=list)
    seed: int = 0

    def params(self) -> Any:
        """The simulator's SimParams (a ValueError naming the field when a value is out of range)."""
        from realm_pipeline.simulation.hero import SimParams

        return SimParams.from_mapping(self.model_dump(exclude={"kind"}))


class TrainingDefaults(_Strict):
    optimizer: Optimizer | None = None  # None: the memory profile chooses
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1, le=4096)
    max_length: int = Field(ge=8, le=131_072)
    save_every: int = Field(50, ge=1)
    mastered_share: float = Field(0.2, ge=0, le=1)
    # Of each level being learned, this share of its weight trains the `preview_levels` levels above it.
    preview_share: float = Field(0.0, ge=0, lt=1)
    preview_levels: int = Field(1, ge=1, le=100)
    # Whether the strain hint moves the mix (level_up halves the replay, back_off raises it). Off where
    # the zones do not fit the skill: on BIN, strain per answer token sits in Recovery all campaign.
    strain_hint: bool = True
    # The learning-rate schedule across segments: restart (a fresh optimizer, warm-up and cosine to 0.1x
    # every segment); carry (the parent checkpoint's optimizer state, the per-segment schedule); continuous
    # (carried state, warm-up once, one cosine over the campaign's segment budget); constant (carried state,
    # warm-up once, then the configured rate).
    schedule: LrSchedule = "restart"

    # Replaced by the Oracle school; kept as a field only so that an old YAML gets a pointed error.
    surprise_weighted: Any = Field(None, exclude=True)

    @field_validator("surprise_weighted")
    @classmethod
    def _surprise_weighted_moved(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("replaced by the Oracle school: add 'oracle' to the hero's `schools` list")
        return None


School = Literal["scribe", "mirror", "oracle"]


class MirrorSettings(_Strict):
    """The Mirror school: how many training-distribution probes after a segment, and the reflections' weight."""

    probes: int = Field(32, ge=1, le=100_000)  # probes per segment, spread over its trained levels
    # mix weight of the reflections when every probe was missed, scaled by the miss share (skill levels sum to 1)
    weight: float = Field(0.2, gt=0, le=10)


class SkillSchedule(_Strict):
    """How a segment's learning weight is shared among the campaign's skills (each skill's review share of
    its mastered levels is its own whatever the strategy): the reference's schedule.yaml strategies."""

    strategy: Literal["equal", "focus", "weighted", "lowest_first", "catch_up"] = "equal"
    weights: dict[str, float] = Field(default_factory=dict)  # weighted: relative weight; unnamed skills 1
    priority: list[str] = Field(default_factory=list)  # focus: mastered in this order, then campaign order
    catch_up_gap: int = Field(3, ge=1, le=1000)  # catch_up: levels behind the leader that go lowest_first

    @field_validator("weights")
    @classmethod
    def _positive_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in weights.items() if not 0 < v <= 1000}
        if bad:
            raise ValueError(f"a skill weight must be in (0, 1000]: {bad}")
        return weights

    @field_validator("priority")
    @classmethod
    def _each_priority_once(cls, priority: list[str]) -> list[str]:
        twice = sorted({s for s in priority if priority.count(s) > 1})
        if twice:
            raise ValueError(f"skill named more than once: {', '.join(twice)}")
        return priority

    @model_validator(mode="after")
    def _options_match_strategy(self) -> SkillSchedule:
        if self.weights and self.strategy != "weighted":
            raise ValueError(f"weights are used by strategy 'weighted' only (strategy is {self.strategy!r})")
        if self.priority and self.strategy != "focus":
            raise ValueError(f"priority is used by strategy 'focus' only (strategy is {self.strategy!r})")
        return self

    def mix_options(self) -> dict[str, Any]:
        """The keywords of evaluation.progression.training_mix this schedule sets."""
        return {
            "strategy": self.strategy,
            "weights": dict(self.weights),
            "priority": list(self.priority),
            "catch_up_gap": self.catch_up_gap,
        }


class HeroCampaign(_Strict):
    skills: list[str] = Field(min_length=1)
    segment_steps: int = Field(ge=1)
    segment_budget: int = Field(ge=1)
    skill_schedule: SkillSchedule = SkillSchedule()
    # `levels`: realm's curriculum (each segment's mix from the evals: levels being learned, replay of
    # mastered ones per skill). `pooled`: the curriculum before per-skill replay (one review share over
    # every skill's mastered levels, no relearning of lost levels), a baseline. `uniform`: none, the
    # baseline a curriculum must beat: every segment the same uniform mix of levels 1..uniform_levels of
    # every skill (within its cap), every one of them evaluated.
    curriculum: Literal["levels", "pooled", "uniform"] = "levels"
    uniform_levels: int | None = Field(None, ge=1, le=1000)
    # segments trained on after a cap call instead of stopping there, so the call can be judged: it held
    # when no level of the skill is earned after it (`realm campaign --past-cap N` for one invocation)
    past_cap: int = Field(0, ge=0, le=100_000)

    @field_validator("skills")
    @classmethod
    def _each_skill_once(cls, skills: list[str]) -> list[str]:
        twice = sorted({s for s in skills if skills.count(s) > 1})
        if twice:
            raise ValueError(f"skill named more than once: {', '.join(twice)}")
        return skills

    @model_validator(mode="after")
    def _uniform_levels_with_uniform(self) -> HeroCampaign:
        if self.curriculum == "uniform" and self.uniform_levels is None:
            raise ValueError("curriculum 'uniform' needs uniform_levels: the highest level its mix trains")
        if self.curriculum != "uniform" and self.uniform_levels is not None:
            raise ValueError(
                f"uniform_levels is used by curriculum 'uniform' only (it is {self.curriculum!r})"
            )
        return self


class HeroEval(_Strict):
    """Where a hero's evals run: `local` transformers (default) or an OpenAI-compatible server."""

    backend: Literal["local", "openai"] = "local"
    base_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$")  # e.g. http://host:8000/v1
    # Unused for scoring: the served name must be the checkpoint id (a server serving another name is
    # refused); kept so older configs load.
    model: str | None = Field(None, min_length=1)
    # The API key is read from this environment variable at eval time: never stored in a config or ledger.
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    concurrency: int = Field(4, ge=1, le=256)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    # How the checkpoint gets into the server (the served name is the checkpoint id, checked on
    # /v1/models before scoring): a command realm starts and stops around the eval, with {checkpoint_dir}
    # and {checkpoint} filled in (e.g. `vllm serve {checkpoint_dir} --served-model-name {checkpoint}`),
    # or a load endpoint on a running server (vLLM's /v1/load_lora_adapter: LoRA adapters).
    serve_command: str | None = Field(None, min_length=1)
    load_endpoint: str | None = Field(None, pattern=r"^/\S*$")
    startup_timeout_s: float = Field(300.0, gt=0, le=7200)

    @model_validator(mode="after")
    def _server_fields_match_backend(self) -> HeroEval:
        server = {
            "base_url": self.base_url,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "serve_command": self.serve_command,
            "load_endpoint": self.load_endpoint,
        }
        if self.backend == "openai":
            if self.serve_command and self.load_endpoint:
                raise ValueError("give serve_command or load_endpoint, not both")
            missing = [k for k in ("base_url",) if server[k] is None]
            if missing:
                raise ValueError(f"backend 'openai' needs {' and '.join(missing)}")
        else:
            given = [k for k, v in server.items() if v is not None]
            if given:
                raise ValueError(
                    f"backend 'local' takes no {', '.join(given)} (those are for backend 'openai')"
                )
        return self


class HeroConfig(_Strict):
    """`configs/heroes/<name>.yaml`: everything that defines a hero and its campaign."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    base: TinyBase | PretrainedBase | SimulatedBase = Field(discriminator="kind")
    method: Method | None = None  # None: the memory profile chooses
    memory_profile: str
    training: TrainingDefaults
    # Scribe (SFT) is the base school and must be named: the Mirror's reflections join the Scribe's mix
    # and the Oracle only re-weights the Scribe's loss, so neither means anything without it.
    schools: list[School] = Field(default_factory=lambda: ["scribe"], min_length=1)
    mirror: MirrorSettings = MirrorSettings()
    campaign: HeroCampaign
    seed: int = Field(ge=0)
    eval: HeroEval = HeroEval()

    @field_validator("schools")
    @classmethod
    def _scribe_first_and_unique(cls, schools: list[str]) -> list[str]:
        if len(set(schools)) != len(schools):
            raise ValueError(f"a school is named twice in {schools}")
        if "scribe" not in schools:
            raise ValueError("'scribe' is required: mirror and oracle build on the Scribe's SFT mix")
        return schools


# ---------------------------------------------------------------- loading


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location, or of its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:  # unknown or missing key: point at the key itself, or at the parent
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            continue  # a union/discriminator tag in the loc, not a YAML level
        line = node.start_mark.line + 1
    return line


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if (
            isinstance(data, dict)
            and part in data
            or isinstance(data, list)
            and isinstance(part, int)
            and part < len(data)
        ):
            data = data[part]
        else:
            return "<missing>" if isinstance(data, dict) else data
    return data


_UNION_MEMBER_TAGS = {"int", "float", "str", "bool"}
# A config is a few hundred nodes; anchors and aliases may share a few, never expand into millions (an
# "alias bomb" would hang validation).
MAX_YAML_NODES = 20_000
_SECRET_FIELD = re.compile(r"(api_?key|token|secret|password|passwd|credential|auth)", re.IGNORECASE)


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes the document holds once every alias is expanded (shared nodes counted per use)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_NODES + 1)
    return memo[id(node)]


def redact(field: str, value: Any) -> Any:
    """A config value fit to print: whatever stands under a key-like field name is hidden.

    `*_env` fields name an environment variable, not a secret (a key pasted there is caught by its shape).
    """
    secret_field = _SECRET_FIELD.search(field) and not field.endswith("_env")
    return "<redacted>" if secret_field and value not in (None, "<missing>") else value


def read_yaml(path: Path) -> tuple[yaml.Node | None, Any]:
    """Parse one YAML file into (node tree, data); any failure is a ConfigError naming the file and line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    loader = None
    try:
        # the loader's reader refuses a NUL or other control character as it is built: inside the try
        loader = _ConfigLoader(text)
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ConfigError(
                f"{path}: anchors and aliases expand to more than {MAX_YAML_NODES} values; "
                "a config needs far fewer (write the values out)"
            )
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:  # its message is two lines, and names no line of the file
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(
            f"{path}: line {line}: character U+{exc.character:04X} is not allowed in YAML (a NUL or other "
            "control character); remove it"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}YAML syntax error: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return node, data


def load_model(path: Path, model: type[BaseModel]) -> Any:
    """Parse and validate one YAML file; every failure is a ConfigError naming file, line, field, value."""
    node, data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: line 1: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # One line per field: a union reports once per member type ("int", "str", ...); merge them.
        merged: dict[tuple[Any, ...], tuple[str, list[str]]] = {}
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic puts the discriminator tag into loc ("base", "config", ...): drop it for the path
            if len(loc) >= 2 and loc[0] == "base" and loc[1] in ("config", "pretrained", "simulated"):
                loc = (loc[0],) + loc[2:]
            if loc and loc[-1] in _UNION_MEMBER_TAGS:
                loc = loc[:-1]
            merged.setdefault(loc, (err["type"], []))[1].append(err["msg"])
        problems = []
        for loc, (kind, msgs) in merged.items():
            field = ".".join(map(str, loc))
            value = "<missing>" if kind == "missing" else redact(field, _value_at(data, loc))
            problems.append(
                f"{path}: line {_line_of(node, loc)}: field '{field or '(top level)'}': "
                f"value {value!r}: {' / '.join(dict.fromkeys(msgs))}"
            )
        raise ConfigError("\n".join(problems)) from None


def load_stage_file(stage_file: Path) -> dict[str, Any]:
    """Read a DeepSpeed JSON config and check it has a zero_optimization.stage."""
    cfg = json.loads(Path(stage_file).read_text(encoding="utf-8"))
    if not isinstance(cfg, dict) or not isinstance(cfg.get("zero_optimization", {}), dict):
        raise ValueError(f"{stage_file}: expected a JSON object with a zero_optimization object")
    stage = cfg.get("zero_optimization", {}).get("stage")
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"{stage_file}: zero_optimization.stage must be 0-3, got {stage!r}")
    _reject_auto(cfg, str(stage_file))
    return cfg


def _reject_auto(node: Any, where: str) -> None:
    # "auto" is only resolved by the HF Trainer integration; a raw deepspeed.initialize() would choke on it.
    if isinstance(node, dict):
        for key, value in node.items():
            _reject_auto(value, f"{where}:{key}")
    elif isinstance(node, list):
        for item in node:
            _reject_auto(item, where)
    elif node == "auto":
        raise ValueError(
            f"{where} is 'auto'; realm configs carry concrete values filled by build_deepspeed_config"
        )


def find_config_dir() -> Path:
    """Where configs live: $REALM_CONFIG_DIR, else ./configs of the working directory, else the shipped ones."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not (path / "realm.yaml").is_file():
            raise ConfigError(f"{CONFIG_DIR_ENV}={env}: no realm.yaml in {path.resolve()}")
        return path.resolve()
    local = Path.cwd() / "configs"
    if (local / "realm.yaml").is_file():
        return local.resolve()
    return DEFAULT_CONFIG_DIR


def _check_base_config(path: Path, node: yaml.Node, config: dict[str, Any]) -> None:
    """Refuse a `base.config` the model's configuration class would refuse, naming file, line, key, value."""
    from realm_pipeline.model_config import base_config_problems

    problems = [
        f"{path}: line {_line_of(node, ('base', 'config', key))}: field 'base.config.{key}': "
        f"value {config.get(key, '<missing>')!r}: {problem}"
        for key, problem in base_config_problems(config)
    ]
    if problems:
        raise ConfigError("\n".join(problems))


def _check_simulated_hero(path: Path, node: yaml.Node, hero: HeroConfig) -> None:
    """Refuse a simulated hero whose parameters the simulator refuses, or that names what needs a model."""
    from realm_pipeline.simulation.hero import SimParamError

    try:
        hero.base.params()
    except SimParamError as exc:
        loc = ("base", *(int(p) if p.isdigit() else p for p in exc.field.split(".")))
        raise ConfigError(
            f"{path}: line {_line_of(node, loc)}: field 'base.{exc.field}': value {exc.value!r}: {exc.reason}"
        ) from None
    # the Mirror probes and the Oracle's loss need a model's outputs; a served eval needs a model to serve
    if hero.schools != ["scribe"]:
        raise ConfigError(
            f"{path}: line {_line_of(node, ('schools',))}: field 'schools': value {hero.schools!r}: "
            "a simulated hero trains with the Scribe only (mirror and oracle need a model)"
        )
    if hero.eval.backend != "local":
        raise ConfigError(
            f"{path}: line {_line_of(node, ('eval', 'backend'))}: field 'eval.backend': value "
            f"{hero.eval.backend!r}: a simulated hero answers in process (leave eval.backend local)"
        )


class Settings:
    """Every config of one `configs/` directory, validated and cross-checked."""

    def __init__(self, config_dir: Path | str | None = None) -> None:
        self.config_dir = Path(config_dir) if config_dir else find_config_dir()

    @cached_property
    def realm(self) -> RealmConfig:
        """`realm.yaml`."""
        return load_model(self.config_dir / "realm.yaml", RealmConfig)

    def _load_dir(self, sub: str, model: type[BaseModel]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        folder = self.config_dir / sub
        for path in sorted(folder.glob("*.yml")):
            # read only *.yaml, but never ignore a config without a word
            raise ConfigError(
                f"{path}: realm reads only *.yaml files; rename it to {path.stem}.yaml"
                + (
                    " (a file of that name exists too: keep one)"
                    if path.with_suffix(".yaml").exists()
                    else ""
                )
            )
        for path in sorted(folder.glob("*.yaml")):
            cfg = load_model(path, model)
            if cfg.name != path.stem:
                raise ConfigError(
                    f"{path}: line 1: field 'name': value {cfg.name!r}: must equal the file name"
                )
            found[cfg.name] = cfg
        return found

    @cached_property
    def skills(self) -> dict[str, SkillConfig]:
        """`skills/*.yaml`, checked against the registered generators."""
        from realm_pipeline.skills import SKILLS

        skills = self._load_dir("skills", SkillConfig)
        for name, cfg in skills.items():
            path = self.config_dir / "skills" / f"{name}.yaml"
            if name not in SKILLS:
                raise ConfigError(
                    f"{path}: line 1: field 'name': value {name!r}: no such skill generator "
                    f"(known: {', '.join(sorted(SKILLS))})"
                )
            if cfg.level_cap > SKILLS[name].max_level:
                line = _line_of(read_yaml(path)[0], ("level_cap",))
                raise ConfigError(
                    f"{path}: line {line}: field 'level_cap': value {cfg.level_cap}: "
                    f"above the skill's max level {SKILLS[name].max_level}"
                )
            if cfg.scoring == "reference" and not callable(getattr(SKILLS[name], "score_reference", None)):
                line = _line_of(read_yaml(path)[0], ("scoring",))
                raise ConfigError(
                    f"{path}: line {line}: field 'scoring': value 'reference': skill {name} has no "
                    f"reference scorer (use 'exact')"
                )
            self._check_eval_items(path, cfg)
        return skills

    @cached_property
    def memory_profiles(self) -> dict[str, MemoryProfile]:
        """`memory_profiles/*.yaml`."""
        return self._load_dir("memory_profiles", MemoryProfile)

    @cached_property
    def heroes(self) -> dict[str, HeroConfig]:
        """`heroes/*.yaml`, with every referenced skill and memory profile checked to exist."""
        heroes = self._load_dir("heroes", HeroConfig)
        for name, hero in heroes.items():
            path = self.config_dir / "heroes" / f"{name}.yaml"
            node = read_yaml(path)[0]
            if hero.memory_profile not in self.memory_profiles:
                raise ConfigError(
                    f"{path}: line {_line_of(node, ('memory_profile',))}: field 'memory_profile': "
                    f"value {hero.memory_profile!r}: no such memory profile "
                    f"(known: {', '.join(sorted(self.memory_profiles))})"
                )
            prog = self.realm.progression
            needed = prog.evals_required + prog.maxed_out_window
            if hero.campaign.segment_budget < needed:
                raise ConfigError(
                    f"{path}: line {_line_of(node, ('campaign', 'segment_budget'))}: field "
                    f"'campaign.segment_budget': value {hero.campaign.segment_budget}: too small for the "
                    f"level cap to be found: a first level-up takes evals_required "
                    f"({prog.evals_required}) segments and maxed-out judges a window of "
                    f"{prog.maxed_out_window} more (realm.yaml progression): at least {needed}"
                )
            if prog.maintenance_min > prog.maxed_out_window:
                raise ConfigError(
                    f"{self.config_dir / 'realm.yaml'}: field 'progression.maintenance_min': value "
                    f"{prog.maintenance_min}: must fit in maxed_out_window ({prog.maxed_out_window})"
                )
            if hero.base.kind == "config":
                _check_base_config(path, node, hero.base.config)
            if hero.base.kind == "simulated":
                _check_simulated_hero(path, node, hero)
            for i, skill in enumerate(hero.campaign.skills):
                if skill not in self.skills:
                    raise ConfigError(
                        f"{path}: line {_line_of(node, ('campaign', 'skills', i))}: "
                        f"field 'campaign.skills.{i}': value {skill!r}: no such skill "
                        f"(known: {', '.join(sorted(self.skills))})"
                    )
            self._check_skill_schedule(path, node, hero)
            self._check_lr_schedule(path, node, hero)
            self._check_training_length(path, node, hero)
        for i, active in enumerate(self.realm.campaign.active_heroes):
            if active not in heroes:
                raise ConfigError(
                    f"{self.config_dir / 'realm.yaml'}: field 'campaign.active_heroes.{i}': "
                    f"value {active!r}: "
                    f"no such hero (known: {', '.join(sorted(heroes))})"
                )
        return heroes

    def _check_skill_schedule(self, path: Path, node: yaml.Node, hero: HeroConfig) -> None:
        """Refuse skill weights or priorities that name a skill the campaign does not train."""
        sched = hero.campaign.skill_schedule
        named = [("weights", k, k) for k in sched.weights] + [
            ("priority", i, k) for i, k in enumerate(sched.priority)
        ]
        for option, where, skill in named:
            if skill not in hero.campaign.skills:
                loc = ("campaign", "skill_schedule", option, where)
                raise ConfigError(
                    f"{path}: line {_line_of(node, loc)}: field 'campaign.skill_schedule.{option}.{where}': "
                    f"value {skill!r}: not one of the campaign's skills ({', '.join(hero.campaign.skills)})"
                )

    def _check_lr_schedule(self, path: Path, node: yaml.Node, hero: HeroConfig) -> None:
        """Refuse a schedule that carries the optimizer state where the state cannot be carried."""
        schedule = hero.training.schedule
        if schedule not in CARRYING_SCHEDULES:
            return
        profile = self.memory_profiles[hero.memory_profile]
        method = hero.method or profile.method
        why = None
        if method in ("lora", "qlora"):
            why = f"method {method!r} trains new adapters every segment: there is no state to carry"
        elif profile.deepspeed is not None:
            why = f"memory profile {profile.name!r} runs DeepSpeed, whose engine owns the optimizer state"
        if why:
            raise ConfigError(
                f"{path}: line {_line_of(node, ('training', 'schedule'))}: field 'training.schedule': "
                f"value {schedule!r}: carries the optimizer state across segments, but {why}; use 'restart'"
            )

    def _check_training_length(self, path: Path, node: yaml.Node, hero: HeroConfig) -> None:
        """Refuse a hero whose `training.max_length` cannot fit some level (up to level_cap) of its skills."""
        from realm_pipeline.lm.budgets import level_lengths, token_kind, training_tokens
        from realm_pipeline.skills import SKILLS

        max_length = hero.training.max_length
        where = f"{path}: line {_line_of(node, ('training', 'max_length'))}: field 'training.max_length'"
        positions = hero.base.config.get("max_position_embeddings") if hero.base.kind == "config" else None
        if isinstance(positions, int) and max_length > positions:
            raise ConfigError(
                f"{where}: value {max_length}: above the model's base.config.max_position_embeddings "
                f"{positions}"
            )
        kind = token_kind(hero.base.kind)
        for skill_name in hero.campaign.skills:
            cfg = self.skills[skill_name]
            for level in range(1, cfg.level_cap + 1):
                lengths = level_lengths(SKILLS[skill_name], level, cfg.eval_items_per_level)
                needed = training_tokens(kind, lengths)
                if needed > max_length:
                    raise ConfigError(
                        f"{where}: value {max_length}: skill {skill_name} level {level} needs {needed} "
                        f"tokens (longest prompt + answer with the chat template, {kind} tokens); raise "
                        f"max_length or lower configs/skills/{skill_name}.yaml level_cap below {level}"
                    )

    def _check_eval_items(self, path: Path, cfg: SkillConfig) -> None:
        """Refuse an eval set size some level (up to level_cap) cannot hold, instead of shrinking it silently
        or exhausting the level's prompts at run time; the message says the largest that fits them all."""
        from realm_pipeline.skills import SKILLS
        from realm_pipeline.skills.heldout import largest_eval_count

        # every finite space counts, BIN's measured one too (eval_size caps only what distinct_prompts gives)
        rooms = [(lv, largest_eval_count(SKILLS[cfg.name], lv)) for lv in range(1, cfg.level_cap + 1)]
        finite = [(level, room) for level, room in rooms if room is not None]
        short = [(level, room) for level, room in finite if room < cfg.eval_items_per_level]
        if short:
            level, fits = short[0]
            line = _line_of(read_yaml(path)[0], ("eval_items_per_level",))
            lower = f" or lower level_cap below {level}" if level > 1 else ""
            raise ConfigError(
                f"{path}: line {line}: field 'eval_items_per_level': value {cfg.eval_items_per_level}: "
                f"level {level} has room for {fits} held-out eval items (its prompt space is small); "
                f"use at most {min(room for _, room in finite)}{lower}"
            )

    @cached_property
    def deepspeed_configs(self) -> dict[str, dict[str, Any]]:
        """`deepspeed/*.json`, parsed now so a broken file is named at init, not when a segment starts."""
        found: dict[str, dict[str, Any]] = {}
        for path in sorted((self.config_dir / "deepspeed").glob("*.json")):
            try:
                found[path.stem] = load_stage_file(path)
            except UnicodeDecodeError:
                raise ConfigError(f"{path}: not UTF-8; save the file as UTF-8") from None
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path}: line {exc.lineno}, column {exc.colno}: JSON error: {exc.msg}"
                ) from None
            except ValueError as exc:  # load_stage_file's own messages name the file
                raise ConfigError(str(exc)) from None
        for name, profile in self.memory_profiles.items():
            if profile.deepspeed is not None and profile.deepspeed not in found:
                raise ConfigError(
                    f"{self.config_dir / 'memory_profiles' / f'{name}.yaml'}: field 'deepspeed': value "
                    f"{profile.deepspeed!r}: no {self.config_dir / 'deepspeed' / f'{profile.deepspeed}.json'}"
                )
        return found

    def validate_all(self) -> None:
        """Load every file so that any error surfaces now, not mid-campaign."""
        _ = self.realm, self.skills, self.memory_profiles, self.heroes, self.deepspeed_configs


def realm_home() -> Path:
    """Where a campaign keeps its state: `$REALM_HOME`, default `./.realm`."""
    return Path(os.environ.get(HOME_ENV, ".realm")).resolve()


def ledger_path() -> Path:
    """The ledger file of this REALM_HOME."""
    return realm_home() / "realm.duckdb"
