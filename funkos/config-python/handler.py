"""Shows where configuration comes from: env (funko.yml `env:`) and secret files."""

import os

SECRET = "/secrets/api-key"  # mounted read-only because funko.yml lists `secrets: [api-key]`


def handle(request):
    greeting = os.environ.get("GREETING", "(GREETING is not set)")
    try:
        with open(SECRET) as f:
            api_key = f.read().strip()
    except FileNotFoundError:
        api_key = f"(no secret file at {SECRET})"
    return f"greeting: {greeting}\napi-key: {api_key}\n"
