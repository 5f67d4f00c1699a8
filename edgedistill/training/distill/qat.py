"""Quantization-aware distillation: the student learns under the int8 rounding its full-integer export applies.

Every ``nn.Linear`` of the student (attention projections, feed-forward, classifier head: the matrix
multiplies that the ONNX, TFLite and Core ML full-integer exports run in int8) is wrapped so that its
input and output are fake-quantized per tensor and its weight per output channel, int8, with
``torch.ao.quantization.FakeQuantize`` (moving-average min/max observers, straight-through gradients).
Training then goes on with the same distillation loss from the teacher's soft targets, at a small
learning rate. Afterwards the wrappers are removed: the result is an ordinary ``save_pretrained``
checkpoint whose weights sit well on the int8 grid, exported by the same full-integer exporters
(calibrated on real text) as any other checkpoint, and loadable by anything that loads the student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class FakeQuantLinear(nn.Module):
    """``nn.Linear`` seen through int8 as the full-integer exports run it: weight per output channel
    (symmetric), input and output per tensor (asymmetric, as ai-edge-quantizer's int8 and the ONNX
    profiles' activations are; TFLite's int8 FULLY_CONNECTED requantizes its output to int8 too)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver

        def activation() -> nn.Module:
            return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
                                dtype=torch.qint8, qscheme=torch.per_tensor_affine)

        self.linear = linear
        self.input_quant, self.output_quant = activation(), activation()
        self.weight_quant = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127,
                                         quant_max=127, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                         ch_axis=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(self.input_quant(x), self.weight_quant(self.linear.weight), self.linear.bias)
        return self.output_quant(out)


def prepare_qat(model: nn.Module) -> nn.Module:
    """Wrap every ``nn.Linear`` of ``model`` in place; returns the model."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, FakeQuantLinear(child))
        else:
            prepare_qat(child)
    return model


def strip_qat(model: nn.Module) -> nn.Module:
    """Put the trained ``nn.Linear`` modules back in place (the float checkpoint to save); returns the model."""
    for name, child in list(model.named_children()):
        if isinstance(child, FakeQuantLinear):
            setattr(model, name, child.linear)
        else:
            strip_qat(child)
    return model


def fake_quant_layers(model: nn.Module) -> int:
    return sum(isinstance(m, FakeQuantLinear) for m in model.modules())
