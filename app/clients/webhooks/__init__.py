"""Client for receivers' webhook endpoints: which targets are safe (target.py), how a message is signed
(signing.py) and serialised (payload.py), sending one attempt (client.py) and reading its outcome (outcome.py)."""
