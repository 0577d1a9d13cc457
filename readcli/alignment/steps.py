"""The plain-domain iterations between two checks, in torch and (on CPU) in numpy.

Dimension letters: B samples still iterating, N_V video tokens (rows), N_L text tokens (columns).
Scalings are row vectors (B, 1, N); K is (B, N_V, N_L) and K^T (B, N_L, N_V), both contiguous.

At readcli's sizes (B <= a few hundred, 75 x 32 tokens) an iteration is a dozen operations on
vectors of a few hundred numbers: the time is the per-operation overhead, not arithmetic. torch's
dispatch costs about twice numpy's per call on CPU (measured, one thread: 16 vs 7.4 us per Dykstra
iteration at B=2, 26 vs 20 at B=32), so on CPU the loop between two checks runs on numpy views of
the same memory (no copies) with the same formulas in the same dtype; on CUDA it stays in torch,
where the operations are queued without waiting. Both paths are tested against each other.
"""

from __future__ import annotations

import numpy as np
import torch

# False forces the torch path on CPU too (the tests compare the two).
NUMPY_ON_CPU = True

Tensors = tuple[torch.Tensor, ...]


def _numpy_path(tensor: torch.Tensor) -> bool:
    return NUMPY_ON_CPU and tensor.device.type == "cpu"


def dykstra_iterations(
    n: int,
    row_reach: torch.Tensor,
    kernel: torch.Tensor,
    kernel_t: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    mass: torch.Tensor,
    sigma: torch.Tensor,
) -> Tensors:
    """n Dykstra iterations (docs/pvla.md §2, w = sigma v) from row_reach = K w (B, 1, N_V).

    Returns u (B, 1, N_V), u^T K (B, 1, N_L), w (B, 1, N_L), sigma (B, 1, 1) and the next K w.
    """
    tiny = torch.finfo(kernel.dtype).tiny
    if _numpy_path(kernel):
        out = _dykstra_numpy(
            n, row_reach.numpy(), kernel.numpy(), kernel_t.numpy(), a.numpy(), b.numpy(), mass.numpy(),
            sigma.numpy(), tiny,
        )  # fmt: skip
        return tuple(torch.from_numpy(x) for x in out)
    for _ in range(n):
        # a / 0 = inf clips to 1 (the limit); padding rows always reach > 0, so 0 / 0 cannot happen
        u = torch.div(a, row_reach).clamp_max_(1.0)  # (B, 1, N_V)
        ktu = torch.bmm(u, kernel)  # (B, 1, N_L)
        w = torch.div(b, ktu)  # (B, 1, N_L)
        torch.minimum(w, sigma, out=w)
        scale = mass / (ktu * w).sum(2, keepdim=True).clamp_min_(tiny)  # (B, 1, 1) mass projection
        w.mul_(scale)
        sigma = sigma * scale  # (B, 1, 1)
        row_reach = torch.bmm(w, kernel_t)  # (B, 1, N_V)
    return u, ktu, w, sigma, row_reach


def _dykstra_numpy(
    n: int,
    row_reach: np.ndarray,
    kernel: np.ndarray,
    kernel_t: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    mass: np.ndarray,
    sigma: np.ndarray,
    tiny: float,
) -> tuple[np.ndarray, ...]:
    """The same iterations as dykstra_iterations' torch loop, on numpy arrays."""
    for _ in range(n):
        u = np.minimum(a / row_reach, 1.0)  # (B, 1, N_V)
        ktu = np.matmul(u, kernel)  # (B, 1, N_L)
        w = np.minimum(b / ktu, sigma)  # (B, 1, N_L)
        scale = mass / np.maximum((ktu * w).sum(2, keepdims=True), tiny)  # (B, 1, 1)
        w *= scale
        sigma = sigma * scale  # (B, 1, 1)
        row_reach = np.matmul(w, kernel_t)  # (B, 1, N_V)
    return u, ktu, w, sigma, row_reach


def sinkhorn_iterations(
    n: int, kv: torch.Tensor, kernel: torch.Tensor, kernel_t: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> Tensors:
    """n Sinkhorn iterations from kv = K v (B, 1, N_V): returns u, u^T K, v and the next K v."""
    tiny = torch.finfo(kernel.dtype).tiny
    if _numpy_path(kernel):
        out = _sinkhorn_numpy(n, kv.numpy(), kernel.numpy(), kernel_t.numpy(), a.numpy(), b.numpy(), tiny)
        return tuple(torch.from_numpy(x) for x in out)
    for _ in range(n):
        u = torch.div(a, kv.clamp_min_(tiny))  # (B, 1, N_V) 0 on padding
        ktu = torch.bmm(u, kernel)  # (B, 1, N_L)
        v = torch.div(b, ktu.clamp_min(tiny))  # (B, 1, N_L) 0 on padding
        kv = torch.bmm(v, kernel_t)  # (B, 1, N_V)
    return u, ktu, v, kv


def _sinkhorn_numpy(
    n: int,
    kv: np.ndarray,
    kernel: np.ndarray,
    kernel_t: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    tiny: float,
) -> tuple[np.ndarray, ...]:
    for _ in range(n):
        u = a / np.maximum(kv, tiny)  # (B, 1, N_V)
        ktu = np.matmul(u, kernel)  # (B, 1, N_L)
        v = b / np.maximum(ktu, tiny)  # (B, 1, N_L)
        kv = np.matmul(v, kernel_t)  # (B, 1, N_V)
    return u, ktu, v, kv
