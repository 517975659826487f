"""FComb's hidden layers on CPU: ``nn.Linear`` over ``[P, H, W, hidden]`` vs 1x1 convolutions on
its channels-last view (what :class:`mrseg.models.fcomb.FComb` runs). Prints milliseconds per
forward + backward for the demo shape (48 decodes of 64x64, hidden 8) and checks both agree.

    python benchmarks/fcomb_head.py [--threads 1] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F


def _linear_head(h: torch.Tensor, layers: list[torch.nn.Linear], out: torch.nn.Linear) -> torch.Tensor:
    h = F.relu(h)
    for layer in layers:
        h = F.relu(layer(h))
    return out(h).squeeze(-1)


def _conv_head(h: torch.Tensor, layers: list[torch.nn.Linear], out: torch.nn.Linear) -> torch.Tensor:
    x = F.relu(h.permute(0, 3, 1, 2))
    for layer in layers:
        x = F.relu(F.conv2d(x, layer.weight[:, :, None, None], layer.bias))
    return F.conv2d(x, out.weight[:, :, None, None], out.bias)[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--decodes", type=int, default=48)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers = [torch.nn.Linear(args.hidden, args.hidden) for _ in range(2)]
    out = torch.nn.Linear(args.hidden, 1)
    base = torch.randn(args.decodes, args.size, args.size, args.hidden)
    result = {"decodes": args.decodes, "size": args.size, "hidden": args.hidden, "threads": args.threads}
    outputs = {}
    for name, head in (("linear", _linear_head), ("conv1x1_channels_last", _conv_head)):
        def step(head=head) -> torch.Tensor:
            h = base.clone().requires_grad_()
            y = head(h, layers, out)
            y.backward(torch.ones_like(y))
            return y.detach()

        outputs[name] = step()
        start = time.perf_counter()
        for _ in range(args.repeats):
            step()
        result[f"{name}_ms"] = round((time.perf_counter() - start) / args.repeats * 1000, 2)
    result["speedup"] = round(result["linear_ms"] / result["conv1x1_channels_last_ms"], 2)
    result["max_abs_diff"] = float((outputs["linear"] - outputs["conv1x1_channels_last"]).abs().max())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
