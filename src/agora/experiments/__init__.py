"""A/B tests on feed variants: deterministic assignment, exposure logging, metrics per arm with
confidence intervals and tests, sample-size planning, sequential guardrails and reports."""
