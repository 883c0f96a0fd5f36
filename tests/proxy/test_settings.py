"""The proxy's typed Settings, read from AICORE_* variables."""

import pytest
from proxy.settings import REPO_ROOT, Settings



def test_settings_read_env_with_prefix(monkeypatch):
    monkeypatch.setenv("AICORE_MODELS", "cnn, resnet50,extra")
    monkeypatch.setenv("AICORE_DEFAULT_MODEL", "cnn")
    monkeypatch.setenv("AICORE_INFERENCE_URL", "http://127.0.0.1:9080/")
    settings = Settings()
    assert settings.models == ["cnn", "resnet50", "extra"]
    assert settings.default_model == "cnn"
    assert settings.inference_url == "http://127.0.0.1:9080"
    assert settings.key_file == REPO_ROOT / ".serve" / "key_file.json"


def test_settings_default_model_not_served_is_rejected():
    with pytest.raises(ValueError, match="default_model 'vgg' is not one of"):
        Settings(default_model="vgg")


def test_settings_default_to_efficientnet_lite0_among_the_image_models(monkeypatch):
    for name in ("AICORE_MODELS", "AICORE_DEFAULT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.default_model == "efficientnet_lite0"
    assert settings.image_models == ["cnn", "resnet50", "efficientnet_lite0"]
