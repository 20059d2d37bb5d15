"""Lightning models: the semantic CycleGAN that adapts synthetic images, and the task model."""
