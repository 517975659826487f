"""Sentences for the page "Does the posterior carry information?", generated from its tables
(:mod:`mrseg.diagnostics.posterior_use`); every number in them is read from those tables."""

from __future__ import annotations

import math

import pandas as pd

from mrseg.diagnostics.posterior_use import (
    BASELINE,
    COLLAPSED_KL,
    FIT_MARGIN,
    INFORMATIVE_KL,
    INFORMATIVE_UNITS,
    curve_summary,
)


def _regime(name: str) -> str:
    return "D-Persona's objective" if name == BASELINE else f"`{name}`"


def pilot_sentences(pilot: pd.DataFrame, qualifying: list[str], ran: list[str] | None = None) -> list[str]:
    """What the pilot found: which settings make both models use the latent, which lose fit; and
    which qualifying settings the ``posterior`` study has run (``ran``) and which it has not yet."""
    if pilot is None or pilot.empty:
        return ["The pilot has not run in this export: no setting has been tried yet."]
    out = []
    base = pilot[pilot["setting"] == BASELINE]
    if not base.empty:
        out.append(f"Under D-Persona's objective the posteriors carry "
                   f"{base['kl_nats'].max():.2g} nats at most, with {int(base['active_units'].max())} active units.")
    tried = pilot[pilot["setting"] != BASELINE]
    for setting, group in tried.groupby("setting", sort=False):
        parts = [f"{m.replace('_s1', '').replace('_', '-')}: KL {r.kl_nats:.3g} nats, {r.active_units:.0f} active units, "
                 f"Dice_match {r.fit_change:+.3f}" for m, r in zip(group["model"], group.itertuples())]
        out.append(f"`{setting}`: " + "; ".join(parts) + ".")
    if qualifying:
        out.append(f"Settings where both models carry information (>= {INFORMATIVE_UNITS} active units and "
                   f">= {INFORMATIVE_KL} nats) without losing more than {FIT_MARGIN} Dice_match: "
                   + ", ".join(f"`{s}`" for s in qualifying) + ".")
        if ran is not None:
            waiting = [s for s in qualifying if s not in ran]
            out.append("The posterior study has run " + (", ".join(f"`{s}`" for s in ran) if ran else "none of them")
                       + (("; not yet: " + ", ".join(f"`{s}`" for s in waiting)) if waiting else "") + ".")
    else:
        out.append(f"No setting tried makes both models carry information (>= {INFORMATIVE_UNITS} active units and "
                   f">= {INFORMATIVE_KL} nats) without losing more than {FIT_MARGIN} Dice_match.")
    return out


def comparison_sentences(comparisons: pd.DataFrame, metric_label: str) -> list[str]:
    """One sentence per (comparison, np): its run-level reading in every regime that ran it."""
    if comparisons is None or comparisons.empty:
        return []
    out = []
    for (label, n_p), group in comparisons.groupby(["comparison", "np"], sort=False):
        readings = []
        for r in group.itertuples():
            ci = (f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]" if math.isfinite(r.ci_low) else "no run-level CI")
            readings.append(f"{_regime(r.regime)} {r.difference:+.4f} {ci} ({r.n_runs} run pairs: {r.verdict})")
        out.append(f"{label}, np = {n_p}, {metric_label}: " + "; ".join(readings) + ".")
    return out


def regime_changes(comparisons: pd.DataFrame) -> list[str]:
    """Where a comparison's verdict differs between D-Persona's objective and an informative regime."""
    if comparisons is None or comparisons.empty:
        return []
    out = []
    for (label, n_p), group in comparisons.groupby(["comparison", "np"], sort=False):
        base = group[group["regime"] == BASELINE]
        if base.empty:
            continue
        for r in group[group["regime"] != BASELINE].itertuples():
            if r.verdict != base.iloc[0]["verdict"]:
                out.append(f"{label} at np = {n_p}: \"{base.iloc[0]['verdict']}\" under D-Persona's objective, "
                           f"\"{r.verdict}\" under `{r.regime}`.")
    return out



def curve_sentences(curves: dict[str, pd.DataFrame]) -> list[str]:
    """One sentence per model of the paper architecture's KL curves."""
    out = []
    for r in curve_summary(curves).itertuples():
        when = (f"falls below {COLLAPSED_KL} nats at step {r.first_step_below}" if r.first_step_below is not None
                else f"stays above {COLLAPSED_KL} nats")
        out.append(f"The thesis's architecture ({r.model}, paper profile): KL {r.kl_first:.3g} nats at step 1, "
                   f"{when}, {r.kl_last10:.3g} nats over its last 10 of {r.steps} steps.")
    return out



def use_sentences(use: pd.DataFrame) -> list[str]:
    """Per regime beyond D-Persona's objective: does every run of every row carry information?"""
    out = []
    if use is None or use.empty:
        return out
    for regime, group in use[use["regime"] != BASELINE].groupby("regime", sort=False):
        weakest = group.sort_values(["active_units_min", "kl_nats_min"]).iloc[0]
        every = bool((group["active_units_min"] >= INFORMATIVE_UNITS).all() and (group["kl_nats_min"] >= INFORMATIVE_KL).all())
        out.append(f"`{regime}`: {'every' if every else 'not every'} run of its {int(group['n_runs'].sum())} "
                   f"carries information (>= {INFORMATIVE_UNITS} active units and >= {INFORMATIVE_KL} nats); the "
                   f"least: {weakest['row']} at np = {int(weakest['np'])}, {weakest['active_units_min']:.0f} active "
                   f"units, {weakest['kl_nats_min']:.2g} nats.")
    return out


def network_sentences(networks: pd.DataFrame) -> list[str]:
    """Whether any network of the capacity ladder or the MiT-B2 row keeps its posterior in use under
    D-Persona's objective: the largest KL and active units of any of their runs."""
    if networks is None or networks.empty:
        return []
    top = networks.sort_values(["kl_nats_max"]).iloc[-1]
    runs = int(networks["n_runs"].sum())
    collapsed = bool((networks["kl_nats_max"] < COLLAPSED_KL).all())
    return [f"The capacity ladder and the MiT-B2 row under D-Persona's objective ({len(networks)} rows, {runs} runs): " + (
                f"every posterior is collapsed (KL < {COLLAPSED_KL} nats in every run; the largest, "
                f"{top['kl_nats_max']:.2g} nats, in {top['row']} at np = {int(top['np'])}, with at most "
                f"{networks['active_units_max'].max():.0f} active units). At these sizes capacity alone does not bring "
                "the posterior into use." if collapsed else
                f"the largest KL is {top['kl_nats_max']:.2g} nats ({top['row']} at np = {int(top['np'])}), with up "
                f"to {networks['active_units_max'].max():.0f} active units: some network keeps its posterior in use.")]


__all__ = ["comparison_sentences", "curve_sentences", "network_sentences", "use_sentences", "pilot_sentences",
           "regime_changes"]
