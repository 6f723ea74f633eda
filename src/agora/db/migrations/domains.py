"""Every domain's tables on the shared metadata: what the migrations must create (Alembic's
autogenerate and the storage tests compare against it)."""

import agora.analytics.models  # noqa: F401
import agora.api.dp_models  # noqa: F401
import agora.audit.models  # noqa: F401
import agora.engagement.models  # noqa: F401
import agora.experiments.models  # noqa: F401
import agora.feed.models  # noqa: F401
import agora.market.models  # noqa: F401
import agora.moderation.models  # noqa: F401
from agora.db.tables import Base

METADATA = Base.metadata
