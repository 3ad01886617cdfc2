"""The {{name}} funko: a Flask app, served by gunicorn on port 3000.

Write routes as in any Flask app; paths are the part after /funko/{{name}}, and url_for()
already includes that prefix. GET /ping answers 200 unless you define it (faaso's readiness
check). Configuration: os.environ (funko.yml `env:`), secret files in /secrets/<key>.
Dependencies: list them in requirements.txt and put their wheels in wheels/
(`pip download -d wheels -r requirements.txt`); the image build has no network.
Run it on your machine with `flask --app app run`.
"""

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def hello():
    who = request.args.get("name", "world")
    return f"Hello, {who}! This is {{name}}.\n"


@app.post("/echo")
def echo():
    return {"you_sent": request.get_json(silent=True)}
