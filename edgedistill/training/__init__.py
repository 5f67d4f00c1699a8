"""The stages that train: the teacher (fine-tuned with transformers' Trainer), its optional born-again copy, and
distillation (student, QAT twin, labels-only baseline, teacher-labelled augmentation)."""
