"""Cell banks, donors, lots, QC results, release decisions, recalls and the CoA."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("lots", __name__, url_prefix="", description="Banks, lots, QC and release")
