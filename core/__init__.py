"""What every GANTrace stage shares: image intake, the weight registry, device/precision policy, timing."""
