"""The figures the kit draws, one module per figure family, each a pure data function (tested on
hand-worked inputs) and a drawing function that writes one PNG atomically (_save.save_png).

- samples: the generate stage's sample grid (plots/<dataset>/samples.png)
- summary: the report's per-dataset score chart
- improvement: Figure 2 (linear probe on generated data against zero-shot, per dataset and per source)
- shots: Figure 3 with the cost axis (CLER against images per class, per dataset)
- groups: Figure 3 as published (probe against images per class, per concept group, with costs)
- metric_vs_probe: Figure 4 (CLER, CLIP score and FID against the linear probe, with correlations)
- evaluation_time: Figure 5 (evaluation time per metric)
- scatter: Figure 6 (CLER gain against MTS), also the drawing of Figure 10
- correlation: Figure 9 (CLER against the linear probe for 5-shot original and retrieved data)
- grids: Figures 7, 12, 13 (direct sampling beside textual inversion) and 14 (strategies by classes)
- finetune_figure: Figure 10 (CLER against fine-tuned accuracy)
- backbones_figure: Figure 11 (CLER against the linear probe across CLIP backbones)
- report_figures: the report's list of paper figures (drawn or why not) and per-dataset charts
"""
