"""One settings object for the whole engine (environment variables prefixed ``AGORA_``)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from agora.db.tables import TIME_FLOOR, as_utc

Section = TypeVar("Section", bound=BaseModel)


def _section_json(value: Any) -> Any:
    """A section given as its domain's model (``Settings(market=MarketConfig(...))``) kept as
    the JSON it stands for."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


#: A settings section a domain owns: its JSON, read as the domain's model by
#: :meth:`Settings.section`.
SectionJson = Annotated[dict[str, Any], BeforeValidator(_section_json)]

#: Event types every deployment understands; add more with AGORA_CUSTOM_EVENT_TYPES.
BUILTIN_EVENT_TYPES: tuple[str, ...] = (
    "view",
    "click",
    "like",
    "dislike",
    "comment",
    "share",
    "bookmark",
    "rating",
    "dwell",
    "purchase",
)

#: Social edge types between two users.
EDGE_TYPES: tuple[str, ...] = ("follow", "friend", "trust", "block", "interact")

#: How strongly each event type counts as a positive interaction when models are trained.
#: Negative or zero weights are left out of the interaction matrix (a dislike is not interest).
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "dwell": 1.0,
    "like": 3.0,
    "rating": 1.0,
    "comment": 4.0,
    "share": 4.0,
    "bookmark": 4.0,
    "purchase": 5.0,
    "dislike": 0.0,
    "answer": 5.0,
    "accept": 5.0,
    "ask": 5.0,
    "flag_upheld": 0.0,  # moderation's record of a removed post: no interest in it
}


class FeedConfig(BaseModel):
    """Platform defaults of the feed (``AGORA_FEED`` as JSON); a user's own controls
    (``PUT /users/{id}/feed/settings``) override diversity, social weight, freshness and
    exploration for that user."""

    ranking_model: str = Field("auto", description='Model that ranks candidates ("auto" = best).')
    # bench/feed_offline.py: 0.2 costs 0.7% NDCG@10 on ml1m-general (0.2874 -> 0.2853) for
    # intra-list diversity 0.694 -> 0.775; 0.3 costs 2.6%
    diversity: float = Field(0.2, ge=0, le=1, description="MMR trade-off: 0 = pure relevance.")
    social_weight: float = Field(0.5, ge=0, le=5, description="Boost for in-network signals.")
    freshness: float = Field(0.3, ge=0, le=5, description="Boost for new items (decays ~2 days).")
    exploration: float = Field(0.1, ge=0, le=0.5, description="Share of slots for new items.")
    new_creator_share: float = Field(
        0.1, ge=0, le=0.5, description="Least share of a page given to new creators (if any)."
    )
    new_creator_days: float = Field(30.0, gt=0, description="A creator is new this long.")
    fresh_days: float = Field(3.0, gt=0, description="An item can be explored this long.")
    exploration_budget: int = Field(
        200, ge=1, description="Impressions an item may get from exploration before it must earn."
    )
    in_network_days: float = Field(14.0, gt=0, description="How far back friends' activity counts.")
    author_decay: float = Field(
        0.6, gt=0, le=1, description="Score factor per earlier item of the same author on a page."
    )
    feedback_half_life_hours: float = Field(
        72.0, gt=0, description="How fast a 'not interested' stops suppressing similar items."
    )
    candidates_per_source: int = Field(200, ge=10, le=5000)
    max_per_thread: int = Field(
        1,
        ge=0,
        description="Most items of one thread (a question and its answers) per page and per "
        "recommendation list, the thread's best first; 0 = no limit.",
    )
    cache_ttl_seconds: float = Field(
        600.0,
        gt=0,
        description="How long a worker keeps a browsing session's shown items and a user's "
        "model candidates (also the sessions' lifetime in Redis).",
    )
    cache_max_users: int = Field(
        5000, ge=0, description="Most users whose model candidates a worker keeps (LRU)."
    )
    cache_max_sessions: int = Field(
        5000, ge=0, description="Most browsing sessions whose shown items a worker keeps."
    )
    concurrent_pages: int = Field(
        4,
        ge=1,
        le=64,
        description="Feed pages one worker ranks at once (CPU work under one interpreter lock; "
        "more would only hold more database connections).",
    )
    refresh_in_serve: bool = Field(
        True,
        description="`agora serve` runs the candidate refresher (see refresher_process; turn "
        "off where `agora worker` processes refresh candidates).",
    )
    # bench/serve_scale.py, 1M users on 2 shared cores: the child made the feed mix slower
    # (first pages' server p50 396-432 ms against 259-303 ms with the thread; off the lock the
    # refresher takes the CPU the requests had) and held 1.3 GB of models and catalogue again
    refresher_process: bool = Field(
        False,
        description="With refresh_in_serve: `agora serve` runs its refresher as a child "
        "process (`agora worker`), started and stopped with it, instead of a thread of the API "
        "process (where its rounds share the interpreter lock with the requests). Worth it "
        "with cores to spare; it loads the models a second time.",
    )
    refresher_shards: int = Field(
        1,
        ge=1,
        le=1024,
        description="How many refreshers split the users by user pk (one `agora worker --shard "
        "I` process or node each; `agora worker` alone starts them all). With more than one, "
        "`agora serve` runs none of its own.",
    )
    full_refresh_seconds: float = Field(
        900.0,
        gt=0,
        description="How often the refresher recomputes every user's candidates (in-network "
        "activity of ties; new models are picked up at once).",
    )
    active_user_days: int = Field(
        0,
        ge=0,
        le=36_500,
        description="Only users with an event or a new chosen tie in the last this many days "
        "get pages ranked ahead by the refresher's full passes (0: every user with any; "
        "Gorse's `active_user_ttl`). The others are ranked when they ask, and again ahead "
        "once they act.",
    )
    max_states: int = Field(
        50_000, ge=0, description="Most users whose feed state and candidates a worker holds."
    )
    hold_on_start: int = Field(
        10_000,
        ge=0,
        description="How many of the users who acted last a worker loads as it starts (in a "
        "thread, at most max_states), so their first pages read nothing from the store "
        "(about 40 KB of memory each).",
    )
    impression_flush_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Longest a served page's impressions wait in a worker's buffer before they "
        "are written (a kill -9 loses at most this much).",
    )
    impression_buffer_rows: int = Field(
        10_000,
        ge=1,
        description="Most impressions a worker buffers; reaching it writes them at once (a "
        "request waits for that write), and while the database fails, older rows past it are "
        "dropped.",
    )


class RateLimit(BaseModel):
    """One token bucket: ``rate`` requests a second on average, up to ``burst`` at once."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, le=1_000_000, description="Tokens added per second.")
    burst: int = Field(ge=1, le=10_000_000, description="Bucket size: requests at once.")


def _default_classes() -> dict[str, RateLimit]:
    # far above what one key does in bench/serve_load.py, bench/recs_load.py (2,024 reads/s on
    # one worker), bench/ingest_load.py (about 45 POST /events a second) and the test suite
    return {
        "read": RateLimit(rate=5000, burst=10000),
        "write": RateLimit(rate=1000, burst=2000),
        "events": RateLimit(rate=200, burst=400),
        "admin": RateLimit(rate=100, burst=300),
        "metrics": RateLimit(rate=10, burst=30),
    }


class LimitsConfig(BaseModel):
    """Per-key rate limits (``AGORA_LIMITS`` as JSON). Each API key has one token bucket per
    route class; a route's class is the scope it needs (``read``, ``write``, ``admin``,
    ``metrics``) unless ``routes`` names another for it (``POST /events`` is ``events``: platforms
    batch into it). With ``AGORA_REDIS_URL`` the buckets are shared by every worker; without,
    each worker has its own (N workers let a key through up to N times the rate)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: no rate limits at all.")
    classes: dict[str, RateLimit | None] = Field(
        default_factory=_default_classes,
        description="Bucket per route class; the ones given replace their defaults, the others "
        "keep them; null (or a class with no entry) is not limited.",
    )
    routes: dict[str, str] = Field(
        default_factory=lambda: {"POST /events": "events"},
        description='Route class of a route other than its scope\'s: {"METHOD /template": class}.',
    )
    keys: dict[str, dict[str, RateLimit | None]] = Field(
        default_factory=dict,
        description="Buckets of one key by its fingerprint (as the access log shows it), per "
        'class, over the classes\' own: {"3f2a9c1b": {"read": {"rate": 10, "burst": 20}}}.',
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _keep_other_defaults(cls, value: object) -> object:
        """``classes`` given in part keep the other classes' defaults."""
        return {**_default_classes(), **value} if isinstance(value, dict) else value

    def bucket(self, key_id: str, route_class: str) -> RateLimit | None:
        """The bucket of ``key_id`` for ``route_class``; None: not limited."""
        own = self.keys.get(key_id)
        if own is not None and route_class in own:
            return own[route_class]
        return self.classes.get(route_class)


class DPFigure(BaseModel):
    """How one kind of released figure spends epsilon and bounds each person's contribution
    (``AGORA_DP_FIGURES``; unset fields keep the figure's defaults, agora.api.dp.FIGURES)."""

    weight: float | None = Field(
        None, gt=0, le=100, description="Multiplies dp_epsilon for this figure."
    )
    max_partitions: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Most cells (tag-day, item, day...) one person counts in.",
    )
    max_per_partition: int | None = Field(
        None, ge=1, le=100_000, description="Most records one person counts in one cell."
    )


class Settings(BaseSettings):
    """Engine configuration; every field can be set as ``AGORA_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AGORA_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("agora-data"), description="Where the SQLite file and models live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default is SQLite in data_dir (WAL mode)."
    )
    api_key: str | None = Field(None, description="Admin API key (all scopes).")
    api_keys: dict[str, list[str]] = Field(
        default_factory=dict, description='Extra keys with scopes, JSON: {"key": ["read"]}.'
    )
    custom_event_types: list[str] = Field(
        default_factory=lambda: ["ask", "answer", "accept"],
        description="Event types beyond the built-in ones (Stack Exchange imports use these).",
    )
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    models: list[str] = Field(
        default_factory=lambda: ["trending", "latest", "itemknn", "als", "bpr", "ease", "content"],
        description="Models that `agora train` fits.",
    )
    default_model: str = Field(
        "auto", description='Model for recommendations; "auto" = best holdout NDCG@10.'
    )
    model_params: dict[str, dict] = Field(
        default_factory=dict, description='Per-model constructor params, JSON: {"als": {...}}.'
    )
    keep_versions: int = Field(3, ge=1, description="Trained versions kept per model.")
    max_batch_events: int = Field(
        1000, ge=1, le=100_000, description="Largest list POST /events accepts (413 past)."
    )
    max_future_seconds: float = Field(
        300.0, description="How far past the server clock a timestamp may lie before rejection."
    )
    earliest_timestamp: datetime = Field(
        TIME_FLOOR,
        description="Earliest time a record may carry (ISO 8601; not before 1970-01-01, the "
        "default: MovieLens 100K starts in 1997, Stack Exchange in 2008). Raise it to your "
        "platform's start to refuse mistyped years.",
    )
    feed: FeedConfig = Field(default_factory=FeedConfig, description="Feed defaults (JSON).")
    # the sections a domain owns: kept as the JSON given here, read as the domain's own model
    # by the domain (:meth:`section`), so config imports no domain
    engagement: SectionJson = Field(
        default_factory=dict,
        description="Points rules, badges and trust levels (JSON; replay after a change; "
        "agora.engagement.config.EngagementConfig).",
    )
    market: SectionJson = Field(
        default_factory=dict,
        description="Ad slots, reserve price, holdout and pacing (JSON; "
        "agora.market.config.MarketConfig).",
    )
    gorse: SectionJson = Field(
        default_factory=dict,
        description="The Gorse-compatible API under /api/: feedback types -> event types (JSON; "
        "agora.gorse.config.GorseConfig).",
    )
    redis_url: str | None = Field(
        None, description="Redis shared by API workers for feed pages; unset = in-process."
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig, description="Per-key rate limits (JSON, see LimitsConfig)."
    )
    background_seconds: float = Field(
        15.0,
        ge=0,
        description="How often `agora serve` applies new events to engagement, scores new "
        "posts' sentiment (x4) and takes due experiment guardrail looks (0: only on request).",
    )
    engagement_after_write_seconds: float = Field(
        0.5,
        ge=0,
        description="After `POST /events`, engagement counts the new events at once when it "
        "did not start counting in the last this many seconds, else together with the other "
        "writes of that time once they are over (0: after every write).",
    )
    analytics_refresh_seconds: float = Field(
        3600.0,
        ge=0,
        description="How often `agora serve` recomputes heavy analytics (fake-engagement "
        "anomalies, influence) in the background (0: only on POST /analytics/refresh).",
    )
    audit_retention_days: float | None = Field(
        365.0,
        gt=0,
        description="How long admin actions stay in the audit log (GET /admin/audit); `agora "
        "serve` deletes older entries hourly. Unset: kept for ever.",
    )
    erasure_retrain_seconds: float = Field(
        60.0,
        ge=0,
        description="After erasing a user, `agora serve` fits the trained models again without "
        "them once this many seconds passed (erasures meanwhile share the fit; 0: never, "
        "their traces in item-side state stay until the next `agora train`).",
    )
    media_root: Path | None = Field(
        None,
        description="Folder that relative image paths in items' `media` are read from "
        "(`agora media analyse` and the background job); none: such paths are not read.",
    )
    media_fetch_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (and their subdomains) whose http(s) image URLs in items' `media` "
        'Agora may fetch, e.g. ["cdn.example.org"]; empty: no URL is fetched (a server '
        "fetching any URL its users post could be made to reach internal addresses).",
    )
    media_max_bytes: int = Field(
        10_000_000, ge=1_000, le=200_000_000, description="Largest image read or accepted."
    )
    explicit_image_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="An image whose explicit score (NudeNet's highest exposed-part confidence) "
        "reaches this opens a moderation case for its item by itself.",
    )
    host: str = Field("127.0.0.1", description="Address `agora serve` and `agora demo` listen on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `agora serve`/`agora demo` use.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the JSON log lines `agora serve` writes to stderr."
    )
    pseudonymize_ids: bool = Field(
        False,
        description="Store platform user ids sealed under id_secret (their keyed HMAC-SHA256 "
        "pseudonym and the id encrypted), in the database and in model artefacts; the API "
        "still takes and gives the platform's ids. Turning it on or off, or changing the "
        "secret, of a store that holds users: `agora users rekey`.",
    )
    id_secret: SecretStr | None = Field(
        None,
        min_length=16,
        description="The secret user ids are sealed under (pseudonymize_ids); keep it out of "
        "the store's backups. Losing it loses which row is whom.",
    )
    console_secret: SecretStr | None = Field(
        None,
        min_length=16,
        description="The key the operator console (/console/) signs its session cookies and "
        "CSRF tokens with. Unset: one is generated on first use and kept in "
        "data_dir/console-secret (mode 0600); set it when several servers share sessions.",
    )
    console_session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long a console sign-in lasts."
    )
    dp_epsilon: float | None = Field(
        None,
        gt=0,
        le=100,
        description="Differential privacy of the aggregates non-admin keys read (trending, "
        "engagement analytics, sentiment, trust levels...): the epsilon each released figure "
        "spends (times its weight in dp_figures). Unset: off, exact figures for every key.",
    )
    dp_daily_budget: float | None = Field(
        None,
        gt=0,
        description="Epsilon all releases of one UTC day may spend together (default: 20 x "
        "dp_epsilon). Once spent, routes answer the figure they released last, marked stale, "
        "or 429 until midnight UTC when there is none.",
    )
    dp_period_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 366,
        description="How long a released figure is answered again, unchanged and at no cost, "
        "before a new one is released.",
    )
    dp_figures: dict[str, DPFigure] = Field(
        default_factory=dict,
        description="Per figure: its share of epsilon and contribution bounds, JSON: "
        '{"trending_topics": {"weight": 2, "max_partitions": 8, "max_per_partition": 1}}.',
    )

    _sections: dict[str, tuple[Any, BaseModel]] = PrivateAttr(default_factory=dict)

    def section(self, name: str, model: type[Section]) -> Section:
        """The section ``name`` (a domain's JSON field, e.g. ``engagement``) read as the owning
        domain's ``model``, validated once per settings object (again if the field is replaced).
        Each domain reads its own through its config module (``engagement_config(settings)``);
        the app validates them all as it starts (:func:`agora.wiring.check_sections`)."""
        raw = getattr(self, name)
        cached = self._sections.get(name)
        if cached is None or cached[0] is not raw or not isinstance(cached[1], model):
            cached = self._sections[name] = (raw, model.model_validate(raw))
        return cached[1]  # type: ignore[return-value]

    @model_validator(mode="after")
    def _a_secret_to_seal_with(self) -> Settings:
        if self.pseudonymize_ids and self.id_secret is None:
            raise ValueError("pseudonymize_ids needs id_secret (AGORA_ID_SECRET)")
        return self

    @field_validator("earliest_timestamp", mode="after")
    @classmethod
    def _not_before_the_floor(cls, value: datetime) -> datetime:
        value = as_utc(value)
        if value < TIME_FLOOR:
            raise ValueError(f"earliest_timestamp must not be before {TIME_FLOOR.isoformat()}")
        return value

    @property
    def dp_budget(self) -> float | None:
        """The epsilon one UTC day may spend (None when differential privacy is off)."""
        if self.dp_epsilon is None:
            return None
        return self.dp_daily_budget if self.dp_daily_budget is not None else 20 * self.dp_epsilon

    @property
    def event_types(self) -> tuple[str, ...]:
        """All event types accepted by ingestion."""
        return BUILTIN_EVENT_TYPES + tuple(
            t for t in self.custom_event_types if t not in BUILTIN_EVENT_TYPES
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, else SQLite inside data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'agora.db').resolve()}"

    @property
    def model_dir(self) -> Path:
        """Where trained model artefacts are stored."""
        return self.data_dir / "models"


@lru_cache
def get_settings() -> Settings:
    """Settings read once from the environment."""
    return Settings()
