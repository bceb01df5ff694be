"""Analyses behind the paper's tables and figures; each stage adds its own module here.

The code that runs the model under an intervention (masking, ablation, sampling) is in
:mod:`vrp.interventions`; the pure statistics are in :mod:`vrp.stats`.

Modules are imported by their full path (``from vrp.analysis.attention_tables import ...``);
this package file only documents them.

* :mod:`vrp.analysis.plotting` — family colours and labels shared by every figure, ``save_figure``.
* :mod:`vrp.analysis.attention_tables` — attention statistics, Tables 1 and 4, the case-study rule.
* :mod:`vrp.analysis.dynamics` — logit-lens dynamics: Table 2 and per-layer curves.
* :mod:`vrp.analysis.figures_attention` — Figures 2a, 3, 4 and 5.
* :mod:`vrp.analysis.probes` — hidden-state probes, neuron ranking, single-pass readouts, Tables 3, 7, 8.
* :mod:`vrp.analysis.consistency` — self-consistency scores and the K sweep.
* :mod:`vrp.analysis.figures_probes` — probe AUROC by layer, Figure 2b, the self-consistency K curve.
* :mod:`vrp.analysis.causal_tables` — the paired comparisons of the causal sweeps: the masking
  table, Tables 5 and 6.
* :mod:`vrp.analysis.figures_causal` — the masking figure (drop against the masked share).
"""
