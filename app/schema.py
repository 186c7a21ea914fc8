"""Every table celltrail has: importing this registers each model module on one metadata."""

from __future__ import annotations

from app import writes
from custody.ledger import models as custody_models
from custody.manufacturing import models as manufacturing_models
from custody.shipping import cold_chain_models
from custody.shipping import models as shipment_models
from custody.trials import models as trial_models
from lots import batch
from lots import models as lots_models
from lots.base import Base

# Named so the imports read as used: each module's tables join Base.metadata on import.
MODEL_MODULES = (
    writes,
    manufacturing_models,
    custody_models,
    shipment_models,
    cold_chain_models,
    trial_models,
    batch,
    lots_models,
)
metadata = Base.metadata
