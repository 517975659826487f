"""Segmentation backbones: image ``[B, C, H, W]`` -> features ``[B, F, H, W]`` at full resolution.

- ``unet-small``: MONAI's ``UNet`` (4 levels, widths ``base, 2base, 4base, 8base``), demo/smoke.
- ``resnet34``: MONAI's ``FlexibleUNet`` with a ResNet-34 encoder and decoder channels
  (256, 128, 64, 32, F) like D-Persona's U-Net; its segmentation head is dropped so the last
  decoder block's F channels are the features. Random init (``backbone_weights`` may name a local
  state-dict file; nothing is downloaded).
- ``mit-b2``: the Mix Transformer encoder of ``transformers``' Segformer with the MiT-B2 sizes,
  random init, plus a small all-MLP decoder (SegFormer style) upsampled to F channels at full
  resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SmallUNet(nn.Module):
    def __init__(self, in_channels: int, feature_channels: int, base: int):
        super().__init__()
        from monai.networks.nets import UNet

        self.net = UNet(spatial_dims=2, in_channels=in_channels, out_channels=feature_channels,
                        channels=(base, 2 * base, 4 * base, 8 * base), strides=(2, 2, 2),
                        num_res_units=0, act="RELU", norm="BATCH")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.net(x))


class ResNet34UNet(nn.Module):
    def __init__(self, in_channels: int, feature_channels: int):
        super().__init__()
        from monai.networks.nets import FlexibleUNet

        net = FlexibleUNet(in_channels, feature_channels, backbone="resnet34", pretrained=False, spatial_dims=2,
                           decoder_channels=(256, 128, 64, 32, feature_channels))
        self.encoder = net.encoder
        self.decoder = net.decoder
        self.skip_connect = net.skip_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x), self.skip_connect)


class MiTB2(nn.Module):
    """Segformer MiT-B2 encoder (hidden 64/128/320/512, depths 3/4/6/3) + all-MLP decoder."""

    def __init__(self, in_channels: int, feature_channels: int, decoder_dim: int = 64):
        super().__init__()
        from transformers import SegformerConfig, SegformerModel

        cfg = SegformerConfig(num_channels=in_channels, hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3],
                              num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1], drop_path_rate=0.0)
        self.encoder = SegformerModel(cfg)
        self.proj = nn.ModuleList(nn.Conv2d(c, decoder_dim, 1) for c in cfg.hidden_sizes)
        self.fuse = nn.Sequential(nn.Conv2d(4 * decoder_dim, decoder_dim, 1, bias=False), nn.BatchNorm2d(decoder_dim),
                                  nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Conv2d(decoder_dim, feature_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(feature_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = self.encoder(pixel_values=x, output_hidden_states=True).hidden_states
        size = states[0].shape[-2:]
        feats = [F.interpolate(p(s), size=size, mode="bilinear", align_corners=False) for p, s in zip(self.proj, states)]
        h = self.fuse(torch.cat(feats, dim=1))
        h = F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(h)


def build_backbone(name: str, in_channels: int, feature_channels: int, base_channels: int) -> nn.Module:
    if name == "unet-small":
        return SmallUNet(in_channels, feature_channels, base_channels)
    if name == "resnet34":
        return ResNet34UNet(in_channels, feature_channels)
    if name == "mit-b2":
        return MiTB2(in_channels, feature_channels)
    raise ValueError(f"unknown backbone {name!r}; choose unet-small, resnet34 or mit-b2")
