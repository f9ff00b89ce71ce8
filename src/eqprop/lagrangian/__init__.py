"""Lagrangian systems, Generalized Lagrangian EP (GLEP) and Hamiltonian echo backpropagation (HEB).

See docs/glep.md. ``system`` (the interface, costs, tasks), ``integrator`` (Stormer-Verlet, the
action, the echo), ``oscillators`` (a quartic chain, the HRU as a system), ``glep`` (the
estimators for the three boundary conditions), ``heb`` (Kerr-cavity lattice, HEB).
"""
from .glep import (ESTIMATORS, PFVP, ConstantInitialValue, FixedEndpoints, GLEPResult, bvp_reference_gradients,
                   final_state_tangents, initial_state_correction, reference_gradients, relative_error, solve_bvp)
from .heb import HEB, KerrLattice, echo_gradient, heb_displacement, train_xor
from .integrator import action, echo, integrate, step, step_action, total_cost
from .oscillators import HRUSystem, QuarticChain
from .system import LagrangianSystem, LinearCost, NodeCost, SquaredError, Task

__all__ = [
    "LagrangianSystem", "Task", "NodeCost", "SquaredError", "LinearCost", "QuarticChain", "HRUSystem",
    "step", "step_action", "action", "integrate", "echo", "total_cost",
    "ESTIMATORS", "PFVP", "ConstantInitialValue", "FixedEndpoints", "GLEPResult", "reference_gradients",
    "bvp_reference_gradients", "solve_bvp", "final_state_tangents", "initial_state_correction", "relative_error",
    "KerrLattice", "HEB", "heb_displacement", "echo_gradient", "train_xor",
]
