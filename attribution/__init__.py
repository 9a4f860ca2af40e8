"""Which generator: resolution augmentation, the latent SVM with its open-set rule, and evidence fusion."""
