"""The proxy's typed Settings, read from AICORE_* variables."""

import pytest

from common.catalogue import Catalogue
from proxy.settings import REPO_ROOT, Settings



def test_settings_read_env_with_prefix(monkeypatch):
    monkeypatch.setenv("AICORE_MODELS", "cnn, text,resnet50")
    monkeypatch.setenv("AICORE_DEFAULT_MODEL", "cnn")
    monkeypatch.setenv("AICORE_INFERENCE_URL", "http://127.0.0.1:9080/")
    settings = Settings()
    assert settings.models == ["cnn", "text", "resnet50"]
    assert settings.image_models == ("cnn", "resnet50")  # kinds from the catalogue
    assert settings.model_of_kind("text") == "text" and settings.model_of_kind("listing") is None
    assert settings.default_model == "cnn"
    assert settings.inference_url == "http://127.0.0.1:9080"
    assert settings.key_file == REPO_ROOT / ".serve" / "key_file.json"


def test_settings_default_model_not_served_is_rejected():
    with pytest.raises(ValueError, match="default_model 'vgg' is not one of"):
        Settings(default_model="vgg")


def test_settings_default_models_are_the_catalogues():
    settings = Settings()
    assert settings.models == list(Catalogue.from_config(REPO_ROOT / "config.properties"))
    assert settings.models == ["cnn", "resnet50", "text", "listing", "query"]


def test_settings_model_not_in_the_catalogue_is_rejected_naming_it():
    with pytest.raises(ValueError, match=r"models \['extra'\] are not in the model_snapshot"):
        Settings(models=["cnn", "extra"], default_model="cnn")


def test_settings_catalogue_comes_from_the_config_it_names(tmp_path):
    # a text-only TorchServe config (as bench.search_text serves): the catalogue is its own
    config = (REPO_ROOT / "config.properties").read_text()
    config = config.replace('"kind": "image"', '"kind": "text"')  # cnn, resnet50 as text kind
    (tmp_path / "config.properties").write_text(config)
    settings = Settings(torchserve_config=tmp_path / "config.properties", models=["text"],
                        default_model="text")
    assert settings.image_models == () and settings.model_of_kind("text") == "text"
