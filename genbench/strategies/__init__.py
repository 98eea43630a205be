"""Model-backed parts of the prompt strategies (the prompt texts themselves are in
`genbench.prompts`):

- `enhance`: CE/LE sentences from a word-to-sentence T5 (CommonGen), tiny stand-in `tiny-t5`;
- `captions`: CiP captions of real images by BLIP-2, tiny stand-in `tiny-blip2`;
- `sources`: makes those texts once per run and caches them beside the images;
- `clip_filter`: CF, CLIP zero-shot confidence of each image for its own class;
- `real_filter`: RF, the share of each image's nearest few-shot originals that are of its class;
- `selection`: which candidates of a CF/RF strategy the manifest keeps;
- `guidance`: RG/RA reference images and the image-to-image pipeline;
- `textual_inversion`: TI, loading learned `<|dataset class|>` tokens into a pipeline.
"""
