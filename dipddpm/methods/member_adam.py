"""Adam over fused parameters, with a step count per member.

Adam is elementwise, so one Adam over K members' stacked weights is K Adams, except for the
step count t in the bias corrections 1 - beta^t: 'clean' backtracking restores one member's
Adam state (t included) and skips its step, and then the members' counts differ. While all
counts agree this is `torch.optim.Adam` itself (one member: exactly the plain loop's Adam);
once they differ the same update runs with a bias correction per member:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - lr / (1 - b1^t_k) * m / (sqrt(v) / sqrt(1 - b2^t_k) + eps)

The state is created at once (zeros, t = 0), as Adam would lazily, so a member's moments can
be copied before the first step.
"""

from __future__ import annotations

import torch

from dipddpm.nn.fused import member_view


class MemberAdam:
    def __init__(self, params: list[torch.Tensor], lr: float, members: int) -> None:
        self.params, self.members = params, members
        self.opt = torch.optim.Adam(params, lr=lr)
        dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        keep = torch.preserve_format
        for p in params:
            self.opt.state[p] = {"step": torch.tensor(0.0, dtype=dtype),
                                 "exp_avg": torch.zeros_like(p, memory_format=keep),
                                 "exp_avg_sq": torch.zeros_like(p, memory_format=keep)}
        self.steps = [0] * members  # Adam's t per member

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def moments(self) -> list[torch.Tensor]:
        """exp_avg of every parameter, then exp_avg_sq of every parameter."""
        st = [self.opt.state[p] for p in self.params]
        return [s["exp_avg"] for s in st] + [s["exp_avg_sq"] for s in st]

    def step(self) -> None:
        if len(set(self.steps)) == 1:
            for p in self.params:
                self.opt.state[p]["step"].fill_(self.steps[0])
            self.opt.step()
        else:
            self._member_step()
        self.steps = [t + 1 for t in self.steps]

    @torch.no_grad()
    def _member_step(self) -> None:
        group = self.opt.param_groups[0]
        (b1, b2), lr, eps = group["betas"], group["lr"], group["eps"]
        t = torch.tensor(self.steps, dtype=torch.float64) + 1
        bc1 = (1 - b1 ** t)[:, None]
        bc2_sqrt = (1 - b2 ** t).sqrt()[:, None]
        for p in self.params:
            st, g = self.opt.state[p], p.grad
            st["exp_avg"].lerp_(g, 1 - b1)
            st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
            K = self.members
            m, v = member_view(st["exp_avg"], K), member_view(st["exp_avg_sq"], K)
            denom = (v.sqrt() / bc2_sqrt.to(v)).add_(eps)
            member_view(p, K).sub_((lr / bc1).to(m) * m / denom)
            st["step"].fill_(max(self.steps) + 1)

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), "steps": list(self.steps)}

    def load_state_dict(self, d: dict) -> None:
        self.opt.load_state_dict(d["opt"])
        self.steps = list(d["steps"])
