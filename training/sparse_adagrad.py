"""Adagrad that updates only the rows a sparse gradient touches.

``torch.optim.Adagrad`` on the text table's sparse gradient (``nn.EmbeddingBag(sparse=True)``)
coalesces it, adds its square into the accumulator as a sparse tensor, masks the accumulator back
to the gradient's pattern and adds a sparse update: four sparse kernels and their allocations per
step, most of a text epoch (measured: 2.4 of 3.7 CPU-s for 3,000 listings). Here the same
arithmetic runs on the touched rows directly: the accumulator and the weights of those rows are
gathered, updated and written back. The text encoder's training gradient already holds each
touched row once (:class:`aicore.text_models.TextEncoder`); any other sparse gradient (one row per
looked-up id) is first summed per row with one ``unique``.

The update is torch's, term for term (``clr = lr / (1 + (step - 1) * lr_decay)``,
``sum += g * g``, ``p -= clr * g / (sqrt(sum) + eps)``), and the state is torch's (``"step"``,
``"sum"`` per parameter), so a checkpoint's optimizer state loads into either class and
``--resume`` continues with the accumulated history. Dense gradients (the head, the fusion
layers, an image encoder) take the same update over all their elements.
"""

import torch
import torch.nn.functional as F


class SparseAdagrad(torch.optim.Adagrad):
    """``torch.optim.Adagrad`` with a row-wise step for sparse gradients (same state, same maths).

    ``maximize``, ``differentiable``, ``foreach`` and ``fused`` are not supported (the parent's
    constructor arguments are otherwise the same); weight decay applies to dense gradients only,
    as in torch, which refuses it for sparse ones.
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                state["step"] += 1
                clr = group["lr"] / (1 + (state["step"].item() - 1) * group["lr_decay"])
                if param.grad.is_sparse:
                    if group["weight_decay"]:
                        raise RuntimeError("weight_decay is not supported with sparse gradients")
                    _sparse_step(param, param.grad, state["sum"], clr, group["eps"])
                else:
                    _dense_step(param, param.grad, state["sum"], clr, group["eps"],
                                group["weight_decay"])
        return loss


def _sparse_step(param: torch.Tensor, grad: torch.Tensor, acc: torch.Tensor, clr: float,
                 eps: float) -> None:
    """The rows of ``grad`` (a COO tensor of ``param``'s shape), summed per row when repeated.

    ``index_add_`` without ``alpha`` and ``embedding`` are the fast scatter and gather on the CPU
    (``index_add_(alpha=...)`` and ``index_copy_`` were 2-6x slower per call, measured).
    """
    rows, values = grad._indices()[0], grad._values()  # (N,), (N, D)
    if grad.is_coalesced() or bool((rows[1:] > rows[:-1]).all()):
        # one row each already: the text encoder's training gradient (autograd's accumulation
        # drops the coalesced flag, hence the check)
        touched, summed = rows, values  # (U,), (U, D)
    else:  # one row per looked-up id, with repeats (nn.EmbeddingBag's own gradient)
        touched, where = torch.unique(rows, return_inverse=True)  # (U,), (N,)
        summed = values.new_zeros((touched.numel(), *values.shape[1:]))  # (U, D)
        summed.index_add_(0, where, values)
    acc.index_add_(0, touched, summed * summed)
    std = F.embedding(touched, acc).sqrt_().add_(eps)  # (U, D): the rows' new sum, rooted
    param.index_add_(0, touched, torch.div(summed, std, out=std).mul_(-clr))


def _dense_step(param: torch.Tensor, grad: torch.Tensor, acc: torch.Tensor, clr: float,
                eps: float, weight_decay: float) -> None:
    if weight_decay:
        grad = grad.add(param, alpha=weight_decay)
    acc.addcmul_(grad, grad, value=1)
    param.addcdiv_(grad, acc.sqrt().add_(eps), value=-clr)
