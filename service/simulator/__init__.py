"""A simulated social platform for the demo and the tests. Not used when flockwatch watches real accounts.

It speaks the Mastodon API wire format on loopback for scripted accounts whose counts follow scenarios
(organic growth, the founding +768/day case and its fall, a bought burst, a purge...) on an injectable clock.
"""
