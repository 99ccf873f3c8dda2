"""FLOP count of one training step of a dense (MLP) network, counted by hand.

Only the matrix multiplications are counted (the convention behind "model FLOPs utilisation").
Left out: elementwise work (bias add and ReLU, 1 FLOP each per hidden unit; output bias;
softmax and cross-entropy, ~5 per output; about the same again backward), about 1.7k FLOP per
image for the tutorial's network, 0.15% of the matmul count; and the optimizer update (RMSprop, ~9
FLOP per parameter per step), ~2.4 MFLOP per step, 4% at batch 50.
For a dense layer with ``n_in`` inputs and ``n_out`` outputs at batch ``B``:

- forward ``y = x @ W``: ``2·B·n_in·n_out`` (one multiply and one add per weight per image);
- backward, weight gradient ``dW = xᵀ @ dy``: ``2·B·n_in·n_out``;
- backward, input gradient ``dx = dy @ Wᵀ``: ``2·B·n_in·n_out``, but NOT for the first layer:
  its input is the data, which needs no gradient, and TensorFlow and XLA prune that matmul.

So a step is ``6·B·Σ n_in·n_out`` minus ``2·B·n_in·n_out`` of the first layer. For the tutorial's
784-300-100-10 network: Σ n_in·n_out = 266,200 multiply-adds per image; forward 532,400,
backward 532,400 + 62,000 = 594,400, total 1,126,800 FLOP per image.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

# The tutorial's network: 784 inputs, hidden layers of 300 and 100 ReLU units, 10 softmax outputs.
TUTORIAL_LAYERS: tuple[int, ...] = (784, 300, 100, 10)


def _pairs(layers: Sequence[int]) -> list[tuple[int, int]]:
    if len(layers) < 2 or any(int(n) < 1 for n in layers):
        raise ValueError(f"layers must be two or more positive widths, got {list(layers)}")
    return [(int(a), int(b)) for a, b in itertools.pairwise(layers)]


def forward_flops_per_image(layers: Sequence[int] = TUTORIAL_LAYERS) -> int:
    """Matmul FLOPs of one forward pass for one image: Σ 2·n_in·n_out."""
    return sum(2 * a * b for a, b in _pairs(layers))


def backward_flops_per_image(layers: Sequence[int] = TUTORIAL_LAYERS) -> int:
    """Matmul FLOPs of one backward pass for one image (first layer's input gradient excluded)."""
    pairs = _pairs(layers)
    weight_grads = sum(2 * a * b for a, b in pairs)
    input_grads = sum(2 * a * b for a, b in pairs[1:])
    return weight_grads + input_grads


def train_flops_per_image(layers: Sequence[int] = TUTORIAL_LAYERS) -> int:
    """Matmul FLOPs of one training step (forward and backward) for one image."""
    return forward_flops_per_image(layers) + backward_flops_per_image(layers)


def train_flops_per_step(batch_size: int, layers: Sequence[int] = TUTORIAL_LAYERS) -> int:
    """Matmul FLOPs of one training step at ``batch_size``."""
    return batch_size * train_flops_per_image(layers)


def parameter_count(layers: Sequence[int] = TUTORIAL_LAYERS) -> int:
    """Weights and biases: Σ (n_in + 1)·n_out (266,610 for the tutorial's network)."""
    return sum((a + 1) * b for a, b in _pairs(layers))
