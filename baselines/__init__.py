"""baselines: the reasoner over any multi-image MCQ dataset (prompts, rewards, GRPO, SFT,
inference, evaluation). May import ``curation``, never ``scale_vqa``."""
