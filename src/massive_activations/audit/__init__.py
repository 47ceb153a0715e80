"""The claims ledger (chapter 6): each claim of the paper tested on the data at hand.

Modules, lowest first: :mod:`~massive_activations.audit.statistics` (the tests' statistics),
:mod:`~massive_activations.audit.verdicts` (verdict words, thresholds, the row format),
:mod:`~massive_activations.audit.claims_activations`,
:mod:`~massive_activations.audit.claims_fits` and
:mod:`~massive_activations.audit.claims_prediction` (one function per claim), and
:mod:`~massive_activations.audit.ledger` (assembly and the ledger file).
"""

from massive_activations.audit.claims_activations import (
    claim_absent_at_init,
    claim_checkpoint_integrity,
    claim_grows_with_size,
    claim_magnitude,
    claim_pretrained_first_token,
    claim_variability,
)
from massive_activations.audit.claims_fits import (
    MAX_FAILED_SHARE,
    agreed_regimes,
    best_r2,
    claim_early_peak_edges,
    claim_eq9_beats_steps,
    claim_eq9_fits,
    claim_log_rise_middle,
)
from massive_activations.audit.claims_prediction import (
    claim_driver,
    claim_predictable,
)
from massive_activations.audit.ledger import (
    build_ledger,
    scale_notice,
)
from massive_activations.audit.statistics import (
    gaussian_ratio,
    spearman_permutation,
    wilson_interval,
)
from massive_activations.audit.verdicts import (
    ALPHA,
    INCONCLUSIVE,
    INIT_TOLERANCE,
    LEDGER_COLUMNS,
    MAGNITUDE_FACTOR,
    MAGNITUDE_FLOOR,
    MODERATE_R2,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    PREDICTABLE_R2,
    REPRODUCED,
    SPANS,
    VERDICT_MEANINGS,
    VERDICTS,
    all_of,
    claim_entry,
    consensus,
    final_checkpoint,
    ledger_row,
    majority,
    per_model_max,
    share,
    untestable,
)

__all__ = [
    "ALPHA",
    "INCONCLUSIVE",
    "INIT_TOLERANCE",
    "LEDGER_COLUMNS",
    "MAGNITUDE_FACTOR",
    "MAGNITUDE_FLOOR",
    "MAX_FAILED_SHARE",
    "MODERATE_R2",
    "NOT_REPRODUCED",
    "NOT_TESTABLE",
    "PREDICTABLE_R2",
    "REPRODUCED",
    "SPANS",
    "VERDICTS",
    "VERDICT_MEANINGS",
    "agreed_regimes",
    "all_of",
    "best_r2",
    "build_ledger",
    "claim_absent_at_init",
    "claim_checkpoint_integrity",
    "claim_driver",
    "claim_early_peak_edges",
    "claim_entry",
    "claim_eq9_beats_steps",
    "claim_eq9_fits",
    "claim_grows_with_size",
    "claim_log_rise_middle",
    "claim_magnitude",
    "claim_predictable",
    "claim_pretrained_first_token",
    "claim_variability",
    "consensus",
    "final_checkpoint",
    "gaussian_ratio",
    "ledger_row",
    "majority",
    "per_model_max",
    "scale_notice",
    "share",
    "spearman_permutation",
    "untestable",
    "wilson_interval",
]
