"""The database helpers (atlaslink.db) that the rest of the code relies on."""

from __future__ import annotations

import math
import sqlite3

import pytest

from atlaslink import db


def test_python_math_functions_for_sqlite_builds_without_them() -> None:
    """A SQLite built without its math functions gets Python ones under the same names (what
    operations.matching computes distances with), NULL-preserving like SQL functions."""
    conn = sqlite3.connect(":memory:")
    db._add_math_functions(conn)
    row = conn.execute(
        "SELECT sqrt(16), asin(1), sin(0), cos(0), radians(180), power(2, 10), "
        "sqrt(NULL), power(NULL, 2), asin(2)"
    ).fetchone()
    assert row[:6] == pytest.approx((4.0, math.pi / 2, 0.0, 1.0, math.pi, 1024.0))
    assert row[6:] == (None, None, None)  # NULL in, NULL out; outside the domain, NULL
    conn.close()
