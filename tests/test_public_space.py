"""A public Space is run by strangers: where the app listens and what it shows of its configuration."""
from app_process import AppProcess, listening_addresses


def test_an_empty_server_name_means_loopback_only(tmp_path):
    app = AppProcess([], log=tmp_path / "app.log", env={"GRADIO_SERVER_NAME": ""})
    try:
        app.wait()
        assert listening_addresses(app.port) == {"127.0.0.1"}
    finally:
        app.stop()
