"""Small labelled corpora built from sentence templates: four topics whose words do not overlap, so a
record's topic is known and an edit can move it from one topic to another (seeded, no download)."""

from __future__ import annotations

import random

TOPICS = {
    "space": ["the telescope observed a distant galaxy", "the rocket reached orbit around the planet",
              "astronauts walked on the moon surface", "a comet passed near the star",
              "the satellite mapped the asteroid belt", "nebula clouds form new stars", "the probe landed on mars"],
    "cooking": ["simmer the tomato sauce with garlic", "bake the bread until golden brown",
                "whisk eggs and sugar for the cake", "fry the onions in olive oil",
                "season the soup with salt and pepper", "roast the chicken in the oven", "knead the dough for pizza"],
    "football": ["the striker scored a late goal", "the goalkeeper saved a penalty kick",
                 "the team won the league championship", "fans cheered in the stadium",
                 "the coach changed the formation", "the referee showed a red card",
                 "the midfielder passed the ball forward"],
    "finance": ["the bank raised interest rates", "stock markets fell on inflation fears",
                "investors bought government bonds", "the company reported quarterly earnings",
                "the currency lost value against the dollar", "dividends were paid to shareholders",
                "loans became more expensive"],
}
OPENINGS = ["Yesterday", "Today", "Last week", "This morning", "Once again", "Suddenly", "Finally", "In the evening"]


def sentence(topic: str, rng: random.Random) -> str:
    """One short record about ``topic``: an opening and two of its phrases."""
    first, second = rng.sample(TOPICS[topic], 2)
    return f"{rng.choice(OPENINGS)}, {first} and {second}."


def records(prefix: str, n: int, seed: int) -> list[dict]:
    """``n`` records ``{id, text, topic}``, ids ``<prefix>0`` ..., topics in turn."""
    rng = random.Random(seed)
    names = list(TOPICS)
    return [{"id": f"{prefix}{i}", "text": sentence(names[i % len(names)], rng), "topic": names[i % len(names)]}
            for i in range(n)]
