"""Every table celltrail has: importing this registers each model module on one metadata."""

from __future__ import annotations

from app import writes
from custody import cold_chain_models, labelling, shipment_models, trial_models
from custody import models as custody_models
from lots import batch
from lots import models as lots_models
from lots.base import Base

# Named so the imports read as used: each module's tables join Base.metadata on import.
MODEL_MODULES = (
    writes,
    labelling,
    custody_models,
    shipment_models,
    cold_chain_models,
    trial_models,
    batch,
    lots_models,
)
metadata = Base.metadata
