"""Continual learning: metaplastic BNNs (Laborieux et al. 2021), EWC, SI and cascade synapses,
task streams and forgetting metrics. ``eqprop continual CONFIG`` runs a stream; docs/continual.md."""
from .cascade import CascadeAdam
from .config import ContinualConfig, load_continual_config
from .ewc import EWC, diagonal_fisher
from .metaplastic import MetaplasticAdam, f_meta, metaplastic_groups
from .metrics import continual_metrics
from .runner import build_model, evaluate, run_continual
from .si import SynapticIntelligence
from .streams import Stream, make_stream

__all__ = ["EWC", "CascadeAdam", "ContinualConfig", "MetaplasticAdam", "Stream", "SynapticIntelligence",
           "build_model", "continual_metrics", "diagonal_fisher", "evaluate", "f_meta", "load_continual_config",
           "make_stream", "metaplastic_groups", "run_continual"]
