"""Face detection, FFHQ alignment and e4e inversion into StyleGAN2 W+."""
