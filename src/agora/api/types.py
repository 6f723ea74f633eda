"""Value types for what requests carry, bounded so that the OpenAPI schema states the bounds and a
value out of them is a 422 naming its place, before it reaches a database or a library.

Integers: a 64-bit database column holds at most 2⁶³-1 (SQLite raises OverflowError past it,
PostgreSQL a DataError), so every integer taken from a request has bounds; ids and offsets use
the column's, counts and page sizes a real maximum of their own (given where they are declared).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

#: The largest value a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT) holds.
MAX_INT64 = 2**63 - 1

#: A row id issued by the store (review cases, ad impressions, alert rules...): 1 .. 2⁶³-1.
RowId = Annotated[int, Field(ge=1, le=MAX_INT64)]
#: How many rows to skip in a listing: 0 .. 2⁶³-1.
Offset = Annotated[int, Field(ge=0, le=MAX_INT64)]
#: A random seed numpy and scikit-learn accept: 0 .. 2³²-1.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
