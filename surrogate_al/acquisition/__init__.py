"""Acquisition: which inputs to simulate next.

* :mod:`~surrogate_al.acquisition.scores`: pointwise scores on the unit cube,
  uncertainty ``U``, diversity ``D`` and the hybrid ``J_λ = λU + (1 − λ)D``.
* :mod:`~surrogate_al.acquisition.schedules`: λ as a function of the budget spent.
* :mod:`~surrogate_al.acquisition.synthesis`: multi-start L-BFGS-B maximisation
  of a score over the box (membership-query synthesis).
* :mod:`~surrogate_al.acquisition.batch_objective`: the submodular batch
  objective (information gain + coverage) given pending points.
* :mod:`~surrogate_al.acquisition.greedy_batch`: greedy batches of that
  objective, by synthesis or lazy greedy over a pool.
* :mod:`~surrogate_al.acquisition.qnipv`: BoTorch's integrated posterior
  variance for several independent outputs at the cost of one.
* :mod:`~surrogate_al.acquisition.feasibility`: ``p(success | x)`` from failed runs.
* :mod:`~surrogate_al.acquisition.surprise`: weights that raise the information
  gain near runs the model cannot predict from the others (leave-one-out).
"""

from surrogate_al.acquisition.batch_objective import BatchObjective, information_gain
from surrogate_al.acquisition.feasibility import FeasibilityModel
from surrogate_al.acquisition.greedy_batch import BatchResult, greedy_pool, greedy_synthesis
from surrogate_al.acquisition.qnipv import IndependentOutputsQNIPV
from surrogate_al.acquisition.schedules import (
    DEFAULT_SCHEDULE,
    SCHEDULES,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    Schedule,
    make_schedule,
)
from surrogate_al.acquisition.scores import (
    DiversityScore,
    HybridScore,
    NoiseLevels,
    UncertaintyScore,
    expected_nn_spacing,
    hybrid,
)
from surrogate_al.acquisition.synthesis import (
    SynthesisResult,
    sobol_points,
    synthesise,
    top_distinct,
)

__all__ = [
    "DEFAULT_SCHEDULE",
    "SCHEDULES",
    "BatchObjective",
    "BatchResult",
    "ConstantSchedule",
    "CosineSchedule",
    "DiversityScore",
    "ExponentialSchedule",
    "FeasibilityModel",
    "HybridScore",
    "IndependentOutputsQNIPV",
    "LinearSchedule",
    "NoiseLevels",
    "Schedule",
    "SynthesisResult",
    "UncertaintyScore",
    "expected_nn_spacing",
    "greedy_pool",
    "greedy_synthesis",
    "hybrid",
    "information_gain",
    "make_schedule",
    "sobol_points",
    "synthesise",
    "top_distinct",
]
