"""The code that runs the model under an intervention; the tables of what it finds are in vrp.analysis.

Modules are imported by their full path (``from vrp.interventions.masking import ...``); this
package file only documents them.

* :mod:`vrp.interventions.masking` — attention-guided patch masking: the questions of the causal
  sweeps, which patches to paint, the masked images, the re-scoring (paper §3.11).
* :mod:`vrp.interventions.ablation` — MLP-channel ablation hooks, channel rankings and conditions,
  the re-scoring under each condition (paper §3.12, §3.13).
* :mod:`vrp.interventions.sampling` — self-consistency sampling: K_max seeded samples per question
  (paper §3.10).
"""
