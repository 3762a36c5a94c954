"""The modelmeter demo: a real model on real data, its traffic replayed with labels later.

``modelmeter demo`` (see ``modelmeter.demo.cli``) trains a scikit-learn classifier on the early
years of a real weather record, serves it over HTTP with the SDK reporting every prediction,
and replays the later years to it at a compressed speed, so that the known drifts of the data
show on the dashboard within minutes.
"""
