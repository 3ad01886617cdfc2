"""The {{name}} funko. faaso calls handle(request) for every request except GET /ping.

request has:
    method     "GET", "POST", ...
    path       "/hello" (the part after /funko/{{name}})
    query      {"name": "last value"}; query_all has every value: {"name": ["a", "b"]}
    headers    {"content-type": "..."} (names in lowercase)
    body       bytes; request.text is it decoded as UTF-8, request.json() parses it

Return one of:
    "text"                        200, text/plain
    b"bytes"                      200, application/octet-stream
    {"a": 1} or [1, 2]            200, application/json
    None                          200, empty body
    (status, body)                e.g. (404, "not here")
    (status, headers, body)       e.g. (201, {"location": "/x"}, {"id": 1})
An exception becomes a 500 with {"error": "..."}; the traceback goes to the container log.
Configuration: os.environ (funko.yml `env:`), secret files in /secrets/<key>.
"""


def handle(request):
    who = request.query.get("name", "world")
    return f"Hello, {who}! This is {{name}}.\n"
