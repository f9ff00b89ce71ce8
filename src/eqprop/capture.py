"""Captured relaxations: one phase (free, nudged or clamped) replayed as a CUDA graph.

Eager PyTorch spends ~10-20 us of host time per operation; a DCHN sweep is ~30 operations, so
at small and medium batch sizes a GPU relaxation is bound by dispatch, not by arithmetic.
``relax(..., capture=True)`` (a rule's ``capture`` setting) records the whole phase — every
sweep of a fixed budget — once, and replays it:

- **static buffers**: the context tensors (``model.context(x)``, computed outside the graph once
  per batch and shared by the phases), the start state, the nudge's prepared targets and ``beta``
  (a 0-d tensor, so one graph serves ``+beta`` and ``-beta``), the clamp value;
- **capture once per key**: (mode, steps, phase kind, fused or general sweeps, the shapes,
  strides, dtypes and device of every input); warm-up runs on a side stream first (cuDNN picks
  its algorithms there), then ``torch.cuda.graph`` records one run;
- **per call**: copy the inputs into the static buffers, ``replay()``, return clones of the
  outputs.

The parameters are read by the graph through their storage: in-place optimizer steps and the
in-place sync of the bf16 relaxation copy (``eqprop.precision.relaxation_copy``) are seen by the
next replay. A parameter that gets a new storage (``model.to``, ``load_state_dict`` with
``assign=True``, a new copy) changes a ``data_ptr``; that is detected on every call and the
phase is captured again.

The plumbing sits behind a small backend: on CUDA ``CudaGraphs``; everywhere else
``EagerGraphs``, where "replay" calls the same function on the same static buffers, so the CPU
tests check the buffers, keys and re-capture against the uncaptured path (float64, 1e-12).
Where a capture raises (an operation CUDA graphs cannot record, a host sync inside the phase),
the phase warns once naming the cause and runs uncaptured from then on.
"""
from __future__ import annotations

import dataclasses
import itertools
import warnings
import weakref

import torch

from .dynamics import Clamp, Nudge, relax

WARMUP = 3  # eager runs on a side stream before a CUDA capture

_entries: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()
_warned: set[str] = set()


# -- backends -----------------------------------------------------------------------------------
class _Replay:
    """A captured function: ``replay()`` runs it again and returns its output tensors."""

    def __init__(self, fn, outs=None, graph=None):
        self.fn, self.outs, self.graph = fn, outs, graph

    def replay(self):
        if self.graph is None:
            return self.fn()
        self.graph.replay()
        return self.outs


class EagerGraphs:
    """Any device: "replay" calls the function on the static buffers (no graph)."""

    name = "eager"

    def capture(self, fn, device) -> _Replay:
        return _Replay(fn)


class CudaGraphs:
    """CUDA: warm up on a side stream, record one run with ``torch.cuda.graph``, replay it."""

    name = "cuda-graph"

    def __init__(self, warmup: int = WARMUP):
        self.warmup = warmup

    def capture(self, fn, device) -> _Replay:
        with torch.cuda.device(device):
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: a data loader's pin-memory thread allocating during the capture must
            # not invalidate it; this thread's own syncs still raise (and fall back)
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                outs = fn()
        return _Replay(fn, outs, graph)


def backend_for(device: torch.device):
    """The backend a device gets: ``CudaGraphs`` on CUDA, ``EagerGraphs`` elsewhere."""
    return CudaGraphs() if device.type == "cuda" else EagerGraphs()


def clear(model: torch.nn.Module | None = None) -> None:
    """Drop the captured phases of ``model`` (all models when None), freeing their graphs."""
    if model is None:
        _entries.clear()
    else:
        _entries.pop(model, None)


def captured_phases(model: torch.nn.Module) -> int:
    """How many phases of ``model`` are captured now (keys with a live graph)."""
    return sum(1 for e in _entries.get(model, {}).values() if e.replay is not None)


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


# -- static buffers -----------------------------------------------------------------------------
def _sig(t: torch.Tensor):
    return (tuple(t.shape), t.stride(), t.dtype, t.device)


def _static(t: torch.Tensor) -> torch.Tensor:
    s = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=t.device)
    s.copy_(t)
    return s


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


class _StaticContext:
    """A dataclass context (``MLPContext``, ``ConvContext``, ...) as static buffers.

    Tensor fields get a static copy each (a field that is a view of another, e.g. ``MLPContext``'s
    ``input_drive`` = ``input_drive_t.T``, a view of the other's static copy, so the aliasing
    holds in the graph too); dict fields are caches and start empty in every run; ``None`` and
    plain numbers are part of the key.
    """

    def __init__(self, ctx):
        self.cls = type(ctx)
        self.tensors, self.views, self.caches, self.fixed = {}, {}, [], {}
        for f in dataclasses.fields(ctx):
            v = getattr(ctx, f.name)
            if isinstance(v, torch.Tensor):
                base = next((n for n, t in self.tensors.items() if _same_storage(getattr(ctx, n), v)), None)
                if base is not None:
                    src = getattr(ctx, base)
                    self.views[f.name] = (base, v.size(), v.stride(), v.storage_offset() - src.storage_offset())
                else:
                    self.tensors[f.name] = _static(v)
            elif isinstance(v, dict):
                self.caches.append(f.name)
            else:
                self.fixed[f.name] = v
        self.view_tensors = {}
        for name, (base, size, stride, off) in self.views.items():
            b = self.tensors[base]
            self.view_tensors[name] = b.as_strided(size, stride, b.storage_offset() + off)

    @staticmethod
    def key(ctx):
        """The context's part of the key, or None where it cannot be held in static buffers."""
        if not dataclasses.is_dataclass(ctx) or isinstance(ctx, type):
            return None
        key, seen = [type(ctx)], []
        for f in dataclasses.fields(ctx):
            v = getattr(ctx, f.name)
            if isinstance(v, torch.Tensor):
                base = next((n for n, t in seen if _same_storage(t, v)), None)
                key.append((f.name, _sig(v), base, v.storage_offset() if base else 0))
                seen.append((f.name, v))
            elif isinstance(v, dict):
                key.append((f.name, "cache"))
            elif v is None or isinstance(v, (bool, int, float, complex, str)):
                key.append((f.name, v))
            else:
                return None
        return tuple(key)

    def load(self, ctx) -> None:
        for name, s in self.tensors.items():
            s.copy_(getattr(ctx, name))

    def fresh(self):
        """A context object over the static buffers, with empty caches."""
        kw = {**self.fixed, **self.tensors, **self.view_tensors, **{c: {} for c in self.caches}}
        return self.cls(**kw)


class _Entry:
    """One captured phase: its static buffers, the parameters' storages and the replay."""

    def __init__(self, model, ctx, state, nudge, clamp, targets, steps, mode, fused):
        self.ctx = _StaticContext(ctx)
        self.state = [_static(s) for s in state]
        self.clamp = None if clamp is None else _static(clamp.value)
        self.nudge = self.beta = self.targets = None
        if nudge is not None:
            self.beta = _beta_buffer(nudge.beta, state[model.output_index])
            self.targets = _static(targets) if isinstance(targets, torch.Tensor) else targets
            key = (id(model), state[model.output_index].dtype)
            self.nudge = Nudge(self.beta, self.targets, _targets={key: self.targets})
        self.ptrs = _storages(model)
        self.replay = None
        self.failed = False
        self.run = self._runner(model, steps, mode, fused)

    def _runner(self, model, steps, mode, fused):
        clamp = None if self.clamp is None else Clamp(self.clamp)
        ref = weakref.ref(model)  # the table is keyed weakly by the model: hold it weakly here too

        def run():
            c = self.ctx.fresh()
            out = relax(ref(), getattr(c, "x", None), self.state, steps=steps, mode=mode, nudge=self.nudge,
                        clamp=clamp, ctx=c, fused=fused)
            return list(out.state)
        return run

    def load(self, ctx, state, nudge, clamp, targets) -> None:
        self.ctx.load(ctx)
        for dst, src in zip(self.state, state):
            dst.copy_(src)
        if self.clamp is not None:
            self.clamp.copy_(clamp.value)
        if self.nudge is not None:
            b = nudge.beta
            if isinstance(b, torch.Tensor):
                self.beta.copy_(b)
            else:
                self.beta.fill_(b)
            if isinstance(self.targets, torch.Tensor):
                self.targets.copy_(targets)


class _Failed:
    """A key whose capture failed: the phase runs uncaptured (until a parameter's storage changes)."""

    failed, replay = True, None

    def __init__(self, ptrs):
        self.ptrs = ptrs


def _beta_buffer(beta, out_state: torch.Tensor) -> torch.Tensor:
    """``beta`` as a static tensor on the state's device: a (B,) tensor keeps its shape and dtype;
    a number becomes a 0-d tensor in the states' dtype (complex of it for a complex number), so
    the force ``-beta dC/ds`` keeps the states' dtype as with a number. In 16-bit states ``beta``
    is then rounded to that dtype (bfloat16: relative error <= 2^-9, e.g. 0.2 -> 0.2002), which
    eager avoids; the contrast still divides by the exact ``beta``."""
    dev = out_state.device
    if isinstance(beta, torch.Tensor):
        return _static(beta.to(dev))
    if isinstance(beta, complex) and not out_state.is_complex():
        cplx = {torch.float64: torch.complex128, torch.float32: torch.complex64}.get(out_state.dtype, torch.complex64)
        return torch.zeros((), dtype=cplx, device=dev)
    return torch.zeros((), dtype=out_state.dtype, device=dev)


def _storages(model) -> tuple:
    return tuple(t.data_ptr() for t in itertools.chain(model.parameters(), model.buffers()))


def _key(model, ctx, state, nudge, clamp, targets, steps, mode, fused):
    ck = _StaticContext.key(ctx)
    if ck is None:
        return None
    if nudge is None:
        kind = ("free",) if clamp is None else ("clamp", _sig(clamp.value))
    else:
        b = nudge.beta
        bk = _sig(b) if isinstance(b, torch.Tensor) else ("complex" if isinstance(b, complex) else "real")
        tk = _sig(targets) if isinstance(targets, torch.Tensor) else None
        if tk is None:
            return None
        kind = ("nudge", bk, tk)
    return (steps, mode, fused, kind, ck, tuple(_sig(s) for s in state))


def captured_relax(model, ctx, state, steps: int, mode: str, nudge=None, clamp=None, fused: bool = True,
                   backend=None):
    """The settled state of ``relax(model, ctx.x, state, steps=steps, mode=mode, nudge=nudge,
    clamp=clamp, ctx=ctx, fused=fused)`` from a captured phase (new tensors), or ``None`` where
    the phase cannot be captured (the caller then runs it uncaptured; a warning names why once).

    ``backend``: default ``backend_for(device)`` (CUDA graphs on CUDA, eager elsewhere).
    """
    if not state or steps < 1:  # nothing to record
        return None
    device = state[0].device
    targets = None
    if nudge is not None:
        targets = nudge.targets(model, state)  # prepared outside the graph (label checks, one-hot)
    key = _key(model, ctx, state, nudge, clamp, targets, steps, mode, fused)
    if key is None:
        warn_once(f"capture: the {type(model).__name__} relaxation cannot be held in static buffers "
                  f"(its context {type(ctx).__name__} is not a dataclass of tensors and numbers, or the "
                  f"nudge targets are not a tensor); running it uncaptured")
        return None
    table = _entries.setdefault(model, {})
    entry = table.get(key)
    if entry is not None and entry.ptrs != _storages(model):
        entry = None  # a parameter has a new storage: capture again
    if entry is None:
        backend = backend or backend_for(device)
        try:  # the buffers too: a context the buffers cannot mirror (e.g. an expanded tensor) raises here
            entry = _Entry(model, ctx, state, nudge, clamp, targets, steps, mode, fused)
            entry.load(ctx, state, nudge, clamp, targets)
            entry.replay = backend.capture(entry.run, device)
        except Exception as e:  # noqa: BLE001 - any failure means "run uncaptured"
            entry = _Failed(_storages(model))
            if device.type == "cuda":
                try:
                    torch.cuda.synchronize(device)
                except Exception:  # noqa: BLE001
                    pass
            warn_once(f"capture of the {type(model).__name__} relaxation failed on {device} "
                      f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); running it uncaptured")
        table[key] = entry
    if entry.failed:
        return None
    entry.load(ctx, state, nudge, clamp, targets)
    return [o.clone() for o in entry.replay.replay()]
