"""Linear + cross-entropy computed chunk by chunk, loss and gradients in one pass, never holding all logits.

The output head of a 50k vocabulary dominates small models: materialising [tokens, vocab] logits (and an fp32
copy for the loss) costs more memory traffic than the transformer. As in Liger Kernel's fused linear
cross-entropy (Hsu et al. 2024), each chunk's logits are made, turned into the gradient, and dropped.
"""

from __future__ import annotations

import torch

# logits per chunk. Eager mode materialises each chunk's fp32 intermediates (about 14 bytes per logit: 3.5 GB at 2**28);
# compiled, they fuse into bf16 logits and gradient (4 bytes per logit), and 2**30 ran 3% faster than 2**28 on an H200
# (bench/results/head-variants-nvidia-h200.txt)
CHUNK_ELEMENTS = 2**28
CHUNK_ELEMENTS_COMPILED = 2**30


def chunk_rows(n: int, vocab: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    """Rows per chunk: all rows when the logits are small (one chunk, no loop), else a multiple of 128."""
    if n * vocab <= chunk_elements:
        return n
    return max(128, chunk_elements // vocab // 128 * 128)


class LinearCrossEntropy(torch.autograd.Function):
    """mean_i CE(h_i @ W^T, y_i). The forward pass also computes dL/dh and dL/dW (the gradient of a mean
    cross-entropy needs nothing from later layers), so backward only scales them by the incoming gradient.
    Matmuls run under the caller's autocast (bf16 logits on GPU); softmax and the loss in fp32."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int, dtype: torch.dtype):
        n = h.shape[0]
        hl, wl = h.to(dtype), weight.to(dtype)  # cast once, not once per chunk
        acc = torch.promote_types(weight.dtype, torch.float32)  # fp32 softmax and sums (fp64 for fp64 weights)
        total = torch.zeros((), device=h.device, dtype=acc)
        dw = torch.zeros(weight.shape, device=weight.device, dtype=acc)
        dh = []
        cols = torch.arange(weight.shape[0], device=h.device)
        for i in range(0, n, rows):
            hc, yc = hl[i : i + rows], targets[i : i + rows]
            logits = (hc @ wl.t()).to(acc)
            lse = torch.logsumexp(logits, dim=-1)
            total = total + (lse - logits.gather(1, yc[:, None]).squeeze(1)).sum()
            # d mean CE / d logits = (softmax - onehot) / n, as one pointwise expression: a scatter would make the
            # compiler write (and re-read) an fp32 copy of the chunk's logits
            p = torch.exp(logits - lse[:, None])
            g = (torch.where(cols == yc[:, None], p - 1.0, p) / n).to(dtype)
            dh.append((g @ wl).to(h.dtype))
            dw = dw + (g.t() @ hc).to(acc)
        ctx.save_for_backward(torch.cat(dh) if len(dh) > 1 else dh[0], dw.to(weight.dtype))
        return total / n

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        dh, dw = ctx.saved_tensors
        return dh * grad_out, dw * grad_out, None, None, None


def linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_elements: int | None = None
) -> torch.Tensor:
    """Mean cross-entropy of the logits h @ weight^T against targets, for h [N, d], weight [V, d], targets [N].
    Matmuls in autocast's dtype when autocast is on (as nn.Linear would run them), else in h's. For training:
    the forward pass already does the backward's work (wasted when no gradient is wanted)."""
    if chunk_elements is None:
        chunk_elements = CHUNK_ELEMENTS_COMPILED if torch.compiler.is_compiling() else CHUNK_ELEMENTS
    dev = h.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
    return LinearCrossEntropy.apply(h, weight, targets, chunk_rows(h.shape[0], weight.shape[0], chunk_elements), dtype)
