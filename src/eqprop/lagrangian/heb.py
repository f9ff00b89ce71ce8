"""Hamiltonian echo backpropagation (HEB; Lopez-Pastor & Marquardt 2023, Phys. Rev. X 13, 031020).

A physical Hamiltonian system whose trainable parameters are the *initial values* of some of its
dynamical variables, with a loss at the final time. Here: a ``rows x cols`` lattice of Kerr
cavities (complex mode amplitudes ``psi_j``, nearest-neighbour hopping)::

    H = sum_j [ omega_j |psi_j|^2 + K/2 |psi_j|^4 ] + sum_<ij> J_ij (psi_i^* psi_j + psi_j^* psi_i)
    i dpsi/dt = dH/dpsi^*        (Wirtinger: d/dpsi^* = (d/dRe + i d/dIm) / 2)

``omega, J, K`` are real, so time reversal is complex conjugation. The sites are split into an
**evaluation field** (the input sites, whose initial amplitudes carry ``x``, and the output site,
read out as the intensity ``|psi_out(T)|^2``) and a **learning field** (every other site), whose
initial amplitudes ``Theta`` (real: zero initial momentum, ``Im psi = 0``) are the parameters.
Fabrication disorder: random, fixed, unknown detunings ``omega_j`` and hopping errors
``J_ij (1 + disorder xi_ij)``; HEB needs no model of them because the physical system computes its
own gradient.

Integrator: Strang splitting ``N(dt/2) L(dt) N(dt/2)`` with the exact Kerr phase
``N(h): psi_j -> psi_j exp(-i (omega_j + K |psi_j|^2) h)`` and the exact hopping
``L(h) = exp(-i J h)``: symplectic, and ``conj o Phi o conj = Phi^{-1}``, so the echo retraces.

HEB for one sample (``heb_displacement``):

1. evolve ``psi(0) = [x-encoded inputs, 0 output, Theta]`` for ``T`` to ``psi(T)``;
2. inject the error ``psi(T) <- psi(T) - i eta dC/dpsi(T)^*`` (only the output site changes;
   for ``C = 1/2 (|psi_out|^2 - y)^2``, ``dC/dpsi_out^* = (|psi_out|^2 - y) psi_out``);
3. conjugate, evolve for ``T`` (the echo), conjugate back: the learning field is back at
   ``Theta - i eta dC/dTheta^* + O(eta^2) = Theta + eta/2 dC/dIm - i eta/2 dC/dRe + O(eta^2)``;
4. a **decay step** turns the displacement into an update: the learning modes, decoupled, relax
   their momentum quadrature into the position one (overdamped free motion, ``x += p / (m gamma)``
   with ``kappa = 1 / (m gamma)``) and drop it: ``Theta <- Re psi_L + kappa Im psi_L``, i.e.
   ``Theta - kappa eta/2 dC/dTheta + eta/2 dC/dIm psi_L(0)`` -- gradient descent with rate
   ``kappa eta / 2`` plus a bias from the (untrained) initial momentum.

The **averaged** variant repeats steps 1-4 with ``(-eta, -kappa)`` (``-m``) from the same
``Theta`` and averages: the bias term flips sign and cancels, the gradient term does not, and the
gradient estimate becomes a central difference (error O(eta^2) instead of O(eta)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class KerrLattice(nn.Module):
    """A lattice of Kerr cavities whose learning-field initial amplitudes ``theta`` are trained.

    rows, cols: lattice; inputs: input sites (row-major index); output: output site; coupling:
    hopping ``J``; kerr: ``K``; amplitude: input amplitude for ``x = 1``; time: ``T``; dt: step;
    disorder: relative hopping error and detuning spread (``0``: ideal lattice); seed: of the
    disorder and of ``theta``'s initialisation. Shapes: ``x`` (B, len(inputs)), ``psi`` (B, sites).
    """

    def __init__(self, rows: int = 4, cols: int = 4, inputs=(0, 3), output: int = 13, coupling: float = 1.0,
                 kerr: float = 1.0, amplitude: float = 1.0, time: float = 3.0, dt: float = 0.05,
                 disorder: float = 0.0, seed: int = 0, dtype=torch.float64):
        super().__init__()
        n = rows * cols
        g = torch.Generator().manual_seed(seed)
        J = torch.zeros(n, n, dtype=dtype)
        for r in range(rows):
            for c in range(cols):
                i = r * cols + c
                for j in ([i + 1] if c + 1 < cols else []) + ([i + cols] if r + 1 < rows else []):
                    e = 1.0 + disorder * float(torch.randn((), generator=g, dtype=dtype))
                    J[i, j] = J[j, i] = coupling * e
        omega = disorder * torch.randn(n, generator=g, dtype=dtype)
        self.inputs, self.output = list(inputs), int(output)
        self.learning = [j for j in range(n) if j not in self.inputs and j != self.output]
        self.kerr, self.amplitude, self.dt = float(kerr), float(amplitude), float(dt)
        self.steps = int(round(time / dt))
        self.register_buffer("omega", omega)
        self.register_buffer("J", J)
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.register_buffer("U", torch.linalg.matrix_exp(-1j * J.to(cdtype) * dt))
        self.theta = nn.Parameter(0.5 * torch.randn(len(self.learning), generator=g, dtype=dtype))
        self.sites = n

    # -- the physics ----------------------------------------------------------------------------
    def initial_state(self, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """``psi(0)``: inputs ``amplitude * x``, output 0, learning field ``theta`` -> (B, sites) complex."""
        theta = self.theta if theta is None else theta
        B = x.shape[0]
        re = torch.zeros(B, self.sites, dtype=self.J.dtype)
        re = re.index_put((torch.arange(B)[:, None], torch.tensor(self.inputs)[None]), self.amplitude * x.to(re.dtype))
        re = re.index_put((torch.arange(B)[:, None], torch.tensor(self.learning)[None]), theta.expand(B, -1))
        return torch.complex(re, torch.zeros_like(re))

    def kerr_phase(self, psi: torch.Tensor, h: float) -> torch.Tensor:
        return psi * torch.exp(-1j * (self.omega + self.kerr * (psi.real ** 2 + psi.imag ** 2)) * h)

    def evolve(self, psi: torch.Tensor) -> torch.Tensor:
        """Run the Strang-split map for ``T``: (B, sites) complex -> same."""
        for _ in range(self.steps):
            psi = self.kerr_phase(psi, 0.5 * self.dt)
            psi = psi @ self.U.T
            psi = self.kerr_phase(psi, 0.5 * self.dt)
        return psi

    def echo(self, psi: torch.Tensor) -> torch.Tensor:
        """Time reversal: conjugate, evolve for ``T``, conjugate back (= the inverse map)."""
        return self.evolve(psi.conj()).conj()

    # -- readout and cost --------------------------------------------------------------------------
    def intensity(self, psi: torch.Tensor) -> torch.Tensor:
        """The output intensity ``|psi_out|^2``: (B,)."""
        o = psi[:, self.output]
        return o.real ** 2 + o.imag ** 2

    def cost(self, psi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``C = 1/2 sum_b (|psi_out|^2 - y_b)^2`` (summed over the batch)."""
        return 0.5 * (self.intensity(psi) - y).square().sum()

    def error_field(self, psi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``dC/dpsi^*``: (|psi_out|^2 - y) psi_out at the output site, 0 elsewhere."""
        e = torch.zeros_like(psi)
        e[:, self.output] = (self.intensity(psi) - y) * psi[:, self.output]
        return e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The output intensity for inputs ``x`` (B, len(inputs)): (B,)."""
        return self.intensity(self.evolve(self.initial_state(x)))

    def predict(self, x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        return (self(x) > threshold).long()


@torch.no_grad()
def heb_displacement(lattice: KerrLattice, x: torch.Tensor, y: torch.Tensor, eta: float) -> torch.Tensor:
    """Steps 1-3 of HEB: the learning field's displacement after error injection and echo,
    ``psi_L(echo) - Theta`` (B, learning sites) complex, ``= -i eta dC/dTheta^* + O(eta^2)`` per sample."""
    psi0 = lattice.initial_state(x)
    psiT = lattice.evolve(psi0)
    psiT = psiT - 1j * eta * lattice.error_field(psiT, y)
    back = lattice.echo(psiT)
    return back[:, lattice.learning] - psi0[:, lattice.learning]


def echo_gradient(lattice: KerrLattice, x, y, eta: float, averaged: bool = False) -> torch.Tensor:
    """HEB's estimate of ``dC/dTheta`` (summed over the batch) from the displacement's momentum
    quadrature: ``-2 Im(displacement) / eta``; ``averaged``: the ``(eta, -eta)`` mean (central)."""
    g = -2 * heb_displacement(lattice, x, y, eta).imag.sum(0) / eta
    if averaged:
        g = 0.5 * (g + (-2 * heb_displacement(lattice, x, y, -eta).imag.sum(0) / -eta))
    return g


def reference_gradient(lattice: KerrLattice, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``dC/dTheta`` and ``dC/dIm psi_L(0)`` by autograd through the same lattice dynamics."""
    im = torch.zeros_like(lattice.theta, requires_grad=True)
    with torch.enable_grad():
        psi0 = lattice.initial_state(x)
        B = x.shape[0]
        bump = torch.zeros(B, lattice.sites, dtype=im.dtype).index_put(
            (torch.arange(B)[:, None], torch.tensor(lattice.learning)[None]), im.expand(B, -1))
        psi0 = psi0 + 1j * bump
        c = lattice.cost(lattice.evolve(psi0), y)
        g_re, g_im = torch.autograd.grad(c, [lattice.theta, im])
    return g_re, g_im


@dataclass
class HEB:
    """One HEB update: error injection ``eta``, echo, decay step with rate ``kappa = 1/(m gamma)``.

    The update is ``Theta <- Theta + mean_b [Re d_b + kappa Im d_b]`` for the per-sample
    displacements ``d_b``: gradient descent on the batch-mean cost with rate ``kappa eta / 2``.
    averaged: also run ``(-eta, -kappa)`` and average the two updates (cancels the bias).
    """

    eta: float = 1e-3
    kappa: float = 100.0
    averaged: bool = False

    @torch.no_grad()
    def update(self, lattice: KerrLattice, x, y) -> torch.Tensor:
        """The change of ``Theta`` for this batch (not applied): (learning sites,)."""
        d = heb_displacement(lattice, x, y, self.eta)
        delta = (d.real + self.kappa * d.imag).mean(0)
        if self.averaged:
            d = heb_displacement(lattice, x, y, -self.eta)
            delta = 0.5 * (delta + (d.real - self.kappa * d.imag).mean(0))
        return delta

    @torch.no_grad()
    def step(self, lattice: KerrLattice, x, y) -> torch.Tensor:
        delta = self.update(lattice, x, y)
        lattice.theta.add_(delta)
        return delta

    @property
    def learning_rate(self) -> float:
        return self.kappa * self.eta / 2


XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = torch.tensor([0.0, 1.0, 1.0, 0.0])


def train_xor(lattice: KerrLattice, rule: HEB, epochs: int = 500, target: float = 1.0, log_every: int = 0,
              stop_at_100: bool = False):
    """Train ``lattice`` on XOR (full batch of 4): targets ``y * target`` intensity, class = intensity
    above ``target / 2``. Returns a history list of dicts (epoch, loss, accuracy)."""
    x, y = XOR_X.to(lattice.J.dtype), XOR_Y.to(lattice.J.dtype) * target
    history = []
    for epoch in range(epochs + 1):
        with torch.no_grad():
            inten = lattice(x)
            loss = float(0.5 * (inten - y).square().mean())
            acc = float(((inten > target / 2).to(y.dtype) == (y > 0).to(y.dtype)).to(y.dtype).mean())
        history.append({"epoch": epoch, "loss": loss, "accuracy": acc})
        if log_every and epoch % log_every == 0:
            print(f"epoch {epoch:4d}  loss {loss:.5f}  accuracy {acc:.2f}")
        if epoch == epochs or (stop_at_100 and acc == 1.0 and loss < 0.01 * target ** 2):
            break
        rule.step(lattice, x, y)
    return history
