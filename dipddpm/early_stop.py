"""GT-free early stopping for DIP: the running variance of the outputs (Wang et al., "Early
Stopping for Deep Image Prior", arXiv:2112.06074).

DIP's outputs settle while the net fits the image and start to wander again once it fits the
noise, so the variance of the recent outputs has a minimum near the best iteration. With o_t
the output at iteration t (C,H,W):

    wmv  VAR_t = 1/W sum_{w<W} mean_pixels (o_{t-w} - mean_{w<W} o_{t-w})^2   (window W)
    emv  m_t = m_{t-1} + a (o_t - m_{t-1});  VAR_t = (1 - a) (VAR_{t-1} + a mean(o_t - m_{t-1})^2)
         (the constant-memory exponential moving variant, West's update)

The rule keeps the output at the lowest VAR seen and stops looking once VAR has not fallen for
`patience` iterations: that output and its iteration are the rule's pick (`iter_es`); the
ground truth only scores it. Every update stays on the device (no host sync): the pick is a
masked copy, the counters are tensors. Outputs come as a batch (K, C, H, W) of K members
(fused fits), each with its own variance, pick and counters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dipddpm.registry import Registry

ES_RULES: Registry = Registry("early-stopping rule")


@dataclass(frozen=True)
class EsParams:
    window: int = 100  # wmv: W outputs; emv: a = 2 / (W + 1), the same centre of mass
    patience: int = 1000  # iterations without a new variance minimum before the pick is final


class RunningVariance:
    """Shared state and the pick; subclasses give `variance(o)` (K,), None while warming up."""

    def __init__(self, params: EsParams, like: torch.Tensor) -> None:
        self.p = params
        K, dev = like.shape[0], like.device
        self.best_var = torch.full((K,), float("inf"), dtype=torch.float64, device=dev)
        self.best_iter = torch.zeros((K,), dtype=torch.int64, device=dev)
        self.since = torch.zeros((K,), dtype=torch.int64, device=dev)
        self.stopped = torch.zeros((K,), dtype=torch.bool, device=dev)
        self.pick = like.detach().clone()
        self.n = 0  # outputs seen

    def update(self, it: int, out: torch.Tensor) -> None:
        """out: (K, ...) the outputs of iteration `it` (1-based)."""
        var = self.variance(out.detach())
        if var is None:
            return
        better = (var < self.best_var) & ~self.stopped
        self.best_var = torch.where(better, var, self.best_var)
        self.best_iter = torch.where(better, torch.full_like(self.best_iter, it), self.best_iter)
        mask = better.view(-1, *([1] * (out.dim() - 1)))
        self.pick.copy_(torch.where(mask, out.detach(), self.pick))
        self.since = torch.where(better, torch.zeros_like(self.since), self.since + 1)
        self.stopped |= self.since >= self.p.patience

    def variance(self, out: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"n": self.n, **{k: v.detach().cpu().clone() for k, v in vars(self).items()
                                if isinstance(v, torch.Tensor)}}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        self.n = int(state.pop("n"))
        for k, v in state.items():
            getattr(self, k).copy_(v)


@ES_RULES.register("wmv")
class WindowedVariance(RunningVariance):
    """VAR over the last W outputs, from running sums (float64) over a ring buffer."""

    def __init__(self, params: EsParams, like: torch.Tensor) -> None:
        super().__init__(params, like)
        self.buf = torch.zeros((params.window, *like.shape), dtype=like.dtype,
                               device=like.device)
        self.s1 = torch.zeros(like.shape, dtype=torch.float64, device=like.device)
        self.s2 = torch.zeros(like.shape[:1], dtype=torch.float64, device=like.device)

    def variance(self, out: torch.Tensor) -> torch.Tensor | None:
        slot = self.n % self.p.window
        if self.n >= self.p.window:  # evict the oldest
            old = self.buf[slot].double()
            self.s1 -= old
            self.s2 -= old.square().flatten(1).sum(1)
        new = out.double()
        self.s1 += new
        self.s2 += new.square().flatten(1).sum(1)
        self.buf[slot].copy_(out)
        self.n += 1
        if self.n < self.p.window:
            return None
        W = self.p.window
        return (self.s2 / W - (self.s1 / W).square().flatten(1).sum(1)) / out[0].numel()


@ES_RULES.register("emv")
class ExpMovingVariance(RunningVariance):
    """Constant memory: an exponential moving mean and variance, a = 2 / (W + 1)."""

    def __init__(self, params: EsParams, like: torch.Tensor) -> None:
        super().__init__(params, like)
        self.a = 2.0 / (params.window + 1)
        self.mean = like.detach().double().clone()
        self.var = torch.zeros(like.shape[:1], dtype=torch.float64, device=like.device)

    def variance(self, out: torch.Tensor) -> torch.Tensor | None:
        x = out.double()
        self.n += 1
        if self.n == 1:
            self.mean.copy_(x)
            return None
        delta = x - self.mean
        self.mean += self.a * delta
        self.var = (1 - self.a) * (self.var + self.a * delta.square().flatten(1).mean(1))
        return self.var if self.n >= self.p.window else None
