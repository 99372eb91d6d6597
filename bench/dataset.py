"""The data every system gets: 100 users and 10,000 `generations` rows, deterministic (seeded).

Rows are dealt round-robin (row i belongs to user i % 100), so each user owns 100 rows; status cycles
per user through queued/running/succeeded/failed, so each user has 25 of each and the list workload
(`status = succeeded`, newest 20) always has more rows than it returns."""

import random

USERS = 100
ROWS = 10_000
PASSWORD = "bench-password-123"
STATUSES = ("queued", "running", "succeeded", "failed")
LIST_STATUS = "succeeded"

_WORDS = (
    "a watercolor of a lighthouse at dusk, cinematic lighting, 35mm, soft fog over the harbor, gulls, "
    "portrait of an astronaut in a field of sunflowers, highly detailed, golden hour, bokeh, octane render, "
    "isometric city block at night, neon signs, rain, reflections, studio ghibli style, wide angle, trending"
).replace(",", "").split()
_MODELS = ("flux-dev", "flux-schnell", "sdxl", "sd3-medium")


def email(i):
    return f"user{i:03d}@bench.example.com"


def prompt(rng):
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(12, 40)))


def settings(rng, seed):
    return {
        "model": rng.choice(_MODELS),
        "steps": rng.choice((20, 28, 30, 50)),
        "guidance": rng.choice((3.5, 5.0, 7.0, 7.5)),
        "width": 1024,
        "height": rng.choice((768, 1024, 1344)),
        "seed": seed,
        "loras": [{"name": "detail-tweaker", "weight": 0.6}],
    }


def rows():
    """[(owner user index, status, prompt, settings)] for every row, the same on every call."""
    rng = random.Random(20260101)
    out = []
    for i in range(ROWS):
        owner = i % USERS
        status = STATUSES[(i // USERS) % len(STATUSES)]
        out.append((owner, status, prompt(rng), settings(rng, rng.randrange(2**31))))
    return out


def inserts(n=400):
    """Bodies for the insert workload (owner added per system): status, prompt, settings."""
    rng = random.Random(42)
    return [{"status": "queued", "prompt": prompt(rng), "settings": settings(rng, rng.randrange(2**31))} for _ in range(n)]
