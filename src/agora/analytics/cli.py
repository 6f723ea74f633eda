"""``agora analytics ...``: every analytics command in one typer app, the topics' commands in
the order ``--help`` lists them."""

from __future__ import annotations

import typer

from agora.analytics.anomalies.cli import app as anomalies_app
from agora.analytics.engagement.cli import app as engagement_app
from agora.analytics.influence.cli import app as influence_app
from agora.analytics.results.cli import app as results_app
from agora.analytics.segments.cli import app as segments_app
from agora.analytics.sentiment.cli import app as sentiment_app
from agora.analytics.trending.cli import app as trending_app

app = typer.Typer(help="Analytics: sentiment of posts and comments.", no_args_is_help=True)
app.add_typer(results_app)  # refresh
app.add_typer(sentiment_app, name="sentiment")
app.add_typer(influence_app)  # influence, seeds, cascades
app.add_typer(trending_app)  # trending, rule, alerts
app.add_typer(engagement_app)  # engagement-report
app.add_typer(segments_app, name="segments")
app.add_typer(anomalies_app)  # anomalies
