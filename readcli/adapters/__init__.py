"""READ and the baseline fine-tuning methods, one injection mechanism, parameter accounting, bundles."""
