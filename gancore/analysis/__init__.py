"""Analysis: explainers (`explain`), latent directions (`latent`), masking and inpainting (`masking`),
quality metrics (`evaluation`), drawing into a model (`projection`)."""
