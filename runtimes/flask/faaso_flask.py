"""faaso's flask runtime: the WSGI application gunicorn serves, made from the funko's Flask app.

$FAASO_APP names it as `module:variable` (default `app:app`); the variable may also be a
factory such as `create_app`, called with no arguments. GET /ping answers 200 unless the app
has its own /ping route. A funko may ship its own faaso_flask.py to replace this file.
"""

import importlib
import os
import sys

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def load_app(target):
    module_name, _, attribute = target.partition(":")
    sys.path.insert(0, "/app")  # the funko's modules, wherever gunicorn was started
    module = importlib.import_module(module_name)
    names = [attribute] if attribute else ["app", "application", "create_app"]
    for name in names:
        found = getattr(module, name, None)
        if isinstance(found, Flask):
            return found
        if callable(found):
            app = found()  # a factory
            if isinstance(app, Flask):
                return app
    sys.exit(f"faaso: {target} is not a Flask app (set options.app to module:variable)")


def pong():
    return "pong\n", 200, {"content-type": "text/plain"}


app = load_app(os.environ.get("FAASO_APP", "app:app"))
if not any(rule.rule == "/ping" for rule in app.url_map.iter_rules()):
    app.add_url_rule("/ping", endpoint="faaso_ping", view_func=pong, methods=["GET"])
# faaso's proxy sets X-Forwarded-For/-Proto/-Host/-Prefix (one hop, never taken from the
# client): with them request.remote_addr is the client and url_for() yields /funko/<name>/….
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)
application = app
