"""Captioning a dataset through the orchestrator before training (issue 15).

``options`` holds what the member chose, ``text`` turns model outputs into captions with the
trigger word first, ``workflow`` builds the one captioning workflow per dataset and reads its
results, ``apply`` writes the captions into a new normalised zip, ``service`` prices, submits,
follows and resumes a run. Nothing here knows Discord.
"""
