"""``ovseg-view``: the viser viewer. ``session.py`` holds state and computes frames (no GUI);
``server.py`` wires it to viser; ``training_job.py`` runs training in the background."""
