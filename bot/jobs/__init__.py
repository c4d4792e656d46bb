"""Training jobs: policy checks, submission, tracking and the explanations users read."""
