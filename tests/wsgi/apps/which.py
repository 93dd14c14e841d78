"""Three apps that say which one was chosen, for settings precedence."""


def _app(name):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]

    return app


env_app = _app("env")
web_app = _app("web.config")
cli_app = _app("cli")
