"""The web dashboard served at ``/ui``: admin sessions, the ledger queries its pages chart,
the evaluation runs it compares, and its static assets (``static/``, plain HTML/CSS/JS).

The HTTP handlers are in ``modelyard.api.ui_api``; nothing here is imported by the
request path of the API itself except ``ui.session.dashboard_auth``.
"""
