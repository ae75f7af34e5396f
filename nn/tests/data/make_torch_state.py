"""Writes the PyTorch fixtures that nn/tests/state.rs loads.

Run from this directory with torch and safetensors installed:

    python make_torch_state.py

Made with torch 2.15.0 (CPU) and safetensors 0.8.0. Outputs:

- torch_cnn.safetensors: `model.state_dict()` of the small CNN below (float32), saved
  with `safetensors.torch.save_file`, after three training-mode batches so the batch-norm
  running statistics and `num_batches_tracked` are not at their initial values.
- torch_cnn_io.safetensors: an input batch `x` and the model's eval-mode output `y`, so
  the Rust test checks that the loaded model computes what PyTorch computes.
"""

import torch
from torch import nn
from safetensors.torch import save_file

torch.manual_seed(0)

# Mirrors the Sequential built in nn/tests/state.rs, layer for layer.
model = nn.Sequential(
    nn.Conv2d(1, 2, 3, padding=1),  # 0
    nn.BatchNorm2d(2),  # 1
    nn.ReLU(),  # 2
    nn.MaxPool2d(2),  # 3
    nn.Flatten(),  # 4
    nn.Linear(2 * 2 * 2, 5),  # 5
    nn.LayerNorm(5),  # 6
    nn.PReLU(),  # 7
    nn.Linear(5, 3),  # 8
)

# Give the affine/normalisation parameters non-default values so a loader that skipped
# them would be caught.
with torch.no_grad():
    model[1].weight.uniform_(0.5, 1.5)
    model[1].bias.normal_()
    model[6].weight.uniform_(0.5, 1.5)
    model[6].bias.normal_()
    model[7].weight.fill_(0.1)

model.train()
with torch.no_grad():
    for _ in range(3):
        model(torch.randn(8, 1, 4, 4))

model.eval()
x = torch.randn(4, 1, 4, 4)
with torch.no_grad():
    y = model(x)

save_file(model.state_dict(), "torch_cnn.safetensors")
save_file({"x": x.contiguous(), "y": y.contiguous()}, "torch_cnn_io.safetensors")
for k, v in model.state_dict().items():
    print(k, tuple(v.shape), v.dtype)
