"""Says hello with Flask. Try /funko/hello-flask/?name=you, /funko/hello-flask/links,
or POST a JSON body to /funko/hello-flask/echo."""

from flask import Flask, request, url_for

app = Flask(__name__)


@app.get("/")
def hello():
    return f"Hello, {request.args.get('name', 'world')}!\n", {"content-type": "text/plain"}


@app.get("/links")
def links():
    # Behind faaso's proxy url_for() includes /funko/hello-flask (X-Forwarded-Prefix).
    return {"hello": url_for("hello"), "echo": url_for("echo")}


@app.post("/echo")
def echo():
    return {"you_sent": request.get_json(silent=True)}
