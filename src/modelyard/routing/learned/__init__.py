"""Learned routing: fit, from recorded outcomes, which models to call and when to stop.

``table`` reads outcome tables and prices; ``features`` turns prompts and answers
into numbers; ``fit`` learns a ``model.LearnedRouter`` (numpy and scipy needed);
``store`` writes and reads its file; ``policy`` is the serving decision
("call this model next" or "stop, answer from that one") and ``replay`` runs it
against recorded outcomes; ``serving`` loads a route's router and picks the
operating point its knob names. Nothing here knows a task or a model name.
"""
