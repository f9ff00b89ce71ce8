"""Device models of physical synapses (consumed by the device-aware optimizers in ``eqprop.optim``)."""
from .rram import (
                   D2D_DISTRIBUTIONS,
                   D2D_PARAMS,
                   PRESETS,
                   RRAMArray,
                   RRAMConfig,
                   RRAMPairs,
                   TruncatedDist,
                   apply_pulses,
                   init_devices,
                   log_resistance,
                   make_generator,
                   mean_model,
                   pair_weight,
                   preset,
                   resistance,
                   split_pulses,
                   update_pairs,
)

__all__ = ["D2D_DISTRIBUTIONS", "D2D_PARAMS", "PRESETS", "RRAMArray", "RRAMConfig", "RRAMPairs", "TruncatedDist",
           "apply_pulses", "init_devices", "log_resistance", "make_generator", "mean_model", "pair_weight", "preset",
           "resistance", "split_pulses", "update_pairs"]
