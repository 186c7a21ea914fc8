"""Manufacturing and batch release: lots commissioned from a cell bank, the signed batch record
and deviations, QC results against the specification, QA release, rejection and recall, label
printing and reconciliation, and the certificate of analysis."""

from __future__ import annotations

from custody.manufacturing.batch_record import (
    MAX_VIALS,
    DonorNotEligibleError,
    LotStateError,
    PassageLimitError,
    Severity,
    Step,
    close_deviation,
    create_lot,
    deviation_label,
    get_lot,
    list_lots,
    lot_deviations,
    lot_vials,
    raise_deviation,
    record_step,
)
from custody.manufacturing.coa import render_coa
from custody.manufacturing.labelling import (
    PRINTABLE,
    LabelsNotRenderableError,
    label_generations,
    lot_print_jobs,
    preview_labels,
    print_labels,
    reconcile,
)
from custody.manufacturing.models import LabelPrint, LabelPrintJob, OosInvestigation
from custody.manufacturing.oos import (
    Investigation,
    InvestigationStateError,
    Outcome,
    Phase,
    close_investigation,
    get_investigation,
    investigation_of,
    lot_investigations,
    open_phase_two,
    record_laboratory_cause,
)
from custody.manufacturing.qc import OosResultError, current_results, lot_results, record_result
from custody.manufacturing.release import (
    Decision,
    ExceptionalRequest,
    ReleaseRefusedError,
    decide,
    lot_decisions,
    recall,
)

__all__ = [
    "MAX_VIALS",
    "PRINTABLE",
    "Decision",
    "DonorNotEligibleError",
    "ExceptionalRequest",
    "Investigation",
    "InvestigationStateError",
    "LabelPrint",
    "LabelPrintJob",
    "LabelsNotRenderableError",
    "LotStateError",
    "OosInvestigation",
    "OosResultError",
    "Outcome",
    "PassageLimitError",
    "Phase",
    "ReleaseRefusedError",
    "Severity",
    "Step",
    "close_deviation",
    "close_investigation",
    "create_lot",
    "current_results",
    "decide",
    "deviation_label",
    "get_investigation",
    "get_lot",
    "investigation_of",
    "label_generations",
    "list_lots",
    "lot_decisions",
    "lot_deviations",
    "lot_investigations",
    "lot_print_jobs",
    "lot_results",
    "lot_vials",
    "open_phase_two",
    "preview_labels",
    "print_labels",
    "raise_deviation",
    "recall",
    "reconcile",
    "record_laboratory_cause",
    "record_result",
    "record_step",
    "render_coa",
]
