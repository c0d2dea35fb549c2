"""Runs asked for from the browser or the shell: a job queue in the `jobs` table and the workers that
run it (one per GPU on a lab box, or the app's embedded one), with who may ask (access.py)."""
