"""Segmentation backbones: image ``[B, C, H, W]`` -> features ``[B, F, H, W]`` at full resolution.

- ``unet-small``: MONAI's ``UNet`` (4 levels, widths ``base, 2base, 4base, 8base``), demo/smoke.
- ``resnet34``: D-Persona's U-Net, i.e. segmentation_models_pytorch's ``Unet("resnet34")``
  encoder + decoder with decoder channels (256, 128, 64, 32, F) and the segmentation head dropped,
  built from MONAI/torch parts (SMP itself cannot be installed beside a CPU torch): MONAI's
  ``ResNet`` with projection shortcuts (torchvision's ResNet-34, ``shortcut_type="B"``, no bias on
  the downsampling convolution, no ``fc``) and :class:`UnetDecoder`, SMP's decoder blocks (nearest
  x2 upsampling, concatenation of the skip, two conv3x3 + BatchNorm + ReLU). With a 1-channel input
  and F = 16 it has exactly 24,429,952 parameters (encoder 21,278,400 + decoder 3,151,552), as
  D-Persona's. MONAI's ``FlexibleUNet`` (identity shortcuts, a different decoder) has 23,649,648.
  Random init; nothing is downloaded.
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


class ResNet34Encoder(nn.Module):
    """ResNet-34 (torchvision layout, projection shortcuts, no ``fc``) returning SMP's feature list:
    ``[relu(bn1(conv1 x)) (64, H/2), layer1 (64, H/4), layer2 (128, H/8), layer3 (256, H/16), layer4 (512, H/32)]``."""

    out_channels = (64, 64, 128, 256, 512)

    def __init__(self, in_channels: int):
        super().__init__()
        from monai.networks.nets import ResNet

        net = ResNet(block="basic", layers=[3, 4, 6, 3], block_inplanes=[64, 128, 256, 512], spatial_dims=2,
                     n_input_channels=in_channels, conv1_t_size=7, conv1_t_stride=2, shortcut_type="B",
                     bias_downsample=False, num_classes=1)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act)
        self.maxpool = net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        h = self.maxpool(feats[0])
        for layer in self.layers:
            h = layer(h)
            feats.append(h)
        return feats


class _DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        from monai.networks.blocks import Convolution

        def conv(cin: int, cout: int) -> nn.Module:
            return Convolution(2, cin, cout, kernel_size=3, act="RELU", norm="BATCH", bias=False)

        self.convs = nn.Sequential(conv(in_channels + skip_channels, out_channels), conv(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.convs(x)


class UnetDecoder(nn.Module):
    """SMP's ``UnetDecoder`` (no centre block, BatchNorm, no attention): from the deepest encoder
    feature up, each block doubles the resolution, concatenates the next skip (none for the last)
    and applies two conv3x3 + BN + ReLU."""

    def __init__(self, encoder_channels: tuple[int, ...], decoder_channels: tuple[int, ...]):
        super().__init__()
        head, *skips = encoder_channels[::-1]
        skips = [*skips, 0]
        ins = [head, *decoder_channels[:-1]]
        self.blocks = nn.ModuleList(_DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, decoder_channels))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        head, *skips = features[::-1]
        x = head
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return x


class ResNet34UNet(nn.Module):
    """D-Persona's U-Net: ResNet-34 encoder + SMP Unet decoder (256, 128, 64, 32, F), no head."""

    def __init__(self, in_channels: int, feature_channels: int):
        super().__init__()
        self.encoder = ResNet34Encoder(in_channels)
        self.decoder = UnetDecoder(ResNet34Encoder.out_channels, (256, 128, 64, 32, feature_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


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
