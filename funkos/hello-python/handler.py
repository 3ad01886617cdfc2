"""Says hello. Try /funko/hello-python/?name=you or POST a JSON body."""


def handle(request):
    if request.method == "POST":
        return {"you_sent": request.json()}
    return f"Hello, {request.query.get('name', 'world')}!\n"
