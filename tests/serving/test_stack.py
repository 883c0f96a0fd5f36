"""A serving stack: its URLs and runtime paths, free ports, and the state.json round trip."""

import json
from pathlib import Path

from common.catalogue import served_models
from serving.stack import REPO_ROOT, STATE_FILE, Stack, stack_from_state, stack_on_free_ports, state_of


def test_stack_urls_keep_management_and_metrics_on_loopback(tmp_path):
    stack = Stack(runtime_dir=tmp_path, host="10.0.0.2", proxy_host="10.0.0.3", inference_port=9080,
                  management_port=9081, metrics_port=9082, proxy_port=9000)

    assert (stack.inference_url, stack.proxy_url) == ("http://10.0.0.2:9080", "http://10.0.0.3:9000")
    assert (stack.management_url, stack.metrics_url) == ("http://127.0.0.1:9081", "http://127.0.0.1:9082")


def test_stack_runtime_paths_are_under_its_runtime_dir(tmp_path):
    stack = Stack(runtime_dir=tmp_path)

    assert stack.key_file == tmp_path / "key_file.json"
    assert (stack.tmp_dir, stack.logs_dir, stack.state_file) == (tmp_path / "tmp", tmp_path / "logs",
                                                                 tmp_path / STATE_FILE)
    assert (stack.proxy_pid_file, stack.proxy_log, stack.torchserve_out) == (
        tmp_path / "proxy.pid", tmp_path / "proxy.log", tmp_path / "torchserve.out")


def test_state_round_trips_through_json(tmp_path):
    stack = Stack(runtime_dir=tmp_path, model_store=tmp_path / "store", proxy_port=9100,
                  torch_threads=2, models=("cnn", "text"))
    state = state_of(stack)
    (tmp_path / STATE_FILE).write_text(json.dumps(state))

    assert state["runtime_dir"] == str(tmp_path) and state["models"] == ("cnn", "text")
    assert stack_from_state(tmp_path) == stack


def test_stack_from_state_is_none_without_a_readable_state(tmp_path):
    assert stack_from_state(tmp_path) is None
    (tmp_path / STATE_FILE).write_text("{not json")
    assert stack_from_state(tmp_path) is None
    (tmp_path / STATE_FILE).write_text(json.dumps({"no_such_field": 1}))
    assert stack_from_state(tmp_path) is None


def test_stack_on_free_ports_serves_the_config_models_on_six_distinct_ports(tmp_path):
    stack = stack_on_free_ports(tmp_path / "rt", Path("store"), torch_threads=3)

    ports = {stack.inference_port, stack.management_port, stack.metrics_port, stack.proxy_port,
             stack.grpc_inference_port, stack.grpc_management_port}
    assert len(ports) == 6
    assert stack.models == tuple(served_models(REPO_ROOT / "config.properties")) and stack.models
    assert stack.config == REPO_ROOT / "config.properties"
    assert stack.runtime_dir == (tmp_path / "rt").resolve() and stack.model_store.is_absolute()
    assert stack.torch_threads == 3
