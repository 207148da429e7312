"""ResNet building blocks in plain torch, with torchvision's module and parameter names (conv1, bn1,
..., downsample.0/1) so that state_dicts of networks built from torchvision ResNets (Simple-BEV)
load with strict=True. torchvision itself is not a dependency."""

from __future__ import annotations

from torch import Tensor, nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3x3 convs with BatchNorm and a residual add."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50/101 block (torchvision "v1.5": the stride sits on the 3x3 conv)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_layer(
    block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int, stride: int = 1
) -> nn.Sequential:
    """One ResNet stage (torchvision `_make_layer`): a projection shortcut on the first block when
    the stride or width changes."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            conv1x1(inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


# Blocks per stage (layer1..layer4) of the torchvision ResNets.
RESNET_LAYERS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


def resnet_stages(depth: int, num_stages: int = 4) -> tuple[nn.Conv2d, nn.BatchNorm2d, list[nn.Sequential]]:
    """The stem (conv1 7x7/2 + bn1) and the first `num_stages` stages of a torchvision ResNet."""
    if depth not in RESNET_LAYERS:
        raise ValueError(f"unsupported ResNet depth {depth}; expected one of {sorted(RESNET_LAYERS)}")
    block, counts = RESNET_LAYERS[depth]
    conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
    bn1 = nn.BatchNorm2d(64)
    stages, inplanes = [], 64
    for index, (planes, count) in enumerate(zip((64, 128, 256, 512), counts)):
        if index >= num_stages:
            break
        stages.append(make_layer(block, inplanes, planes, count, stride=1 if index == 0 else 2))
        inplanes = planes * block.expansion
    return conv1, bn1, stages


def init_resnet_(module: nn.Module, zero_init_residual: bool = False) -> None:
    """torchvision's initialisation: Kaiming-normal convs, unit BatchNorm; optionally the last BN
    of each residual branch at zero so every block starts as the identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in module.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
