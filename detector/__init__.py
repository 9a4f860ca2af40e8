"""Image-space evidence: the CLIP probe, FingerprintNet and the pictures that explain them."""
