"""The paper's figures the report draws beyond Figures 3-6 (genbench.plots, genbench.figures_metrics):
one module per figure family, each a pure data function (tested on hand-worked inputs) and a
drawing function that writes one PNG atomically.

- improvement: Figure 2 (linear probe on generated data against zero-shot, per dataset and per source)
- groups: Figure 3 as published (probe against images per class, per concept group, with costs)
- correlation: Figure 9 (CLER against the linear probe for 5-shot original and retrieved data)
- grids: Figures 7, 12, 13 (direct sampling beside textual inversion) and 14 (strategies by classes)
- finetune_figure: Figure 10 (CLER against fine-tuned accuracy)
- backbones_figure: Figure 11 (CLER against the linear probe across CLIP backbones)
"""
