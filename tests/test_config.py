"""Configuration loading (src/config.py and the methods' configs) and train.py's handling of
configs and run directories."""

import argparse
import json
import re
import sys
from dataclasses import asdict, fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, run_command
from src import methods
from src.cli import parse_key_value
from src.config import CommonArguments, ConfigError, config_from_dict, from_command_line, load_config
from src.methods.diffusion import METHOD as DIFFUSION, Arguments
from src.methods.gano import GANOArguments

ORIGINAL_FIELDS = """batch_size val_batch_size epochs val_size record_interval white_noise augment schedule
resolution npad epsilon sigma_1 sigma_L T L rbf_scale rbf_eps factorization num_freqs_input scale_factor
d_co_domain mult_dims fmult rank groups lr Ntest num_workers ema_rate""".split()


def test_arguments_has_every_field_of_the_original_and_ntrain():
    names = {f.name for f in fields(Arguments)}
    assert set(ORIGINAL_FIELDS) | {"ntrain"} <= names


@pytest.mark.parametrize("json_file", sorted((ROOT / "exps" / "json").glob("*.json")), ids=lambda p: p.name)
def test_shipped_configs_load(json_file):
    """GANO's configs are named gano-*.json; the others are the diffusion operator's."""
    method = "gan" if json_file.name.startswith("gano-") else "sbgm"
    assert type(load_config(json_file, method)) is methods.get(method).schema


def test_gano_configs_hold_the_gano_notebook_values_at_the_paper_scale():
    for name, white in (("gano-indep.json", True), ("gano-rbf.json", False)):
        args = load_config(ROOT / "exps" / "json" / name, "gan")
        assert (args.n_critic, args.lambda_grad, args.lr, args.batch_size, args.d_co_domain) == (10, 10.0, 1e-4, 32, 32)
        assert (args.resolution, args.npad, args.epochs, args.white_noise) == (128, 8, 300, white)


@pytest.mark.parametrize("values, method, culprit, other", [
    ({"n_critic": 5}, "sbgm", "n_critic", "gan"),
    ({"lambda_grad": 1.0}, "sbgm", "lambda_grad", "gan"),
    ({"epsilon": 1e-4}, "gan", "epsilon", "sbgm"),
    ({"sigma_1": 2.0, "n_critic": 3}, "gan", "sigma_1", "sbgm"),
])
def test_a_key_of_the_other_method_is_named_with_its_method(values, method, culprit, other):
    with pytest.raises(ConfigError, match=f"'{culprit}' belongs to method '{other}'"):
        config_from_dict(values, method=method)


@pytest.mark.parametrize("values, culprit", [
    ({"n_critic": 0}, "n_critic"),
    ({"lambda_grad": -1.0}, "lambda_grad"),
    ({"grf_alpha": 1.0}, "grf_alpha"),
    ({"grf_tau": 0.0}, "grf_tau"),
    ({"noise_kernel": "gaussian"}, "noise_kernel"),
    ({"noise_kernel": "gano", "noise_method": "cholesky"}, "noise_method"),
    ({"epoch": 3}, "epoch"),
])
def test_bad_gano_configs_name_the_key(values, culprit):
    with pytest.raises(ConfigError, match=culprit):
        config_from_dict(values, method="gan")


def test_both_methods_share_the_common_keys():
    common = {f.name for f in fields(CommonArguments)}
    assert common <= {f.name for f in fields(Arguments)} and common <= {f.name for f in fields(GANOArguments)}
    assert {f.name for f in fields(GANOArguments)} - common == {"n_critic", "lambda_grad"}


def test_paper_configs_hold_the_paper_values():
    rbf, indep = load_config(ROOT / "exps/json/rbf-copied.json"), load_config(ROOT / "exps/json/indep-copied.json")
    assert (rbf.white_noise, indep.white_noise) == (False, True)
    for args in (rbf, indep):
        assert (args.batch_size, args.val_batch_size, args.epochs, args.record_interval) == (16, 128, 100000, 100)
        assert (args.sigma_1, args.sigma_L, args.T, args.L, args.epsilon) == (30.0, 0.01, 3, 500, 6e-6)
        assert (args.rbf_scale, args.rbf_eps, args.factorization, args.d_co_domain) == (0.05, 0.01, "tucker", 128)
        assert (args.npad, args.mult_dims, args.fmult, args.rank, args.groups) == (8, [1, 2, 4, 4], 0.5, 0.1, 0)
        assert (args.lr, args.Ntest, args.ema_rate, args.augment, args.schedule) == (2e-4, 256, 0.1, True, "geometric")


@pytest.mark.parametrize("values, culprit", [
    ({"epoch": 10}, "epoch"),                       # a typo of epochs
    ({"batch_size": "sixteen"}, "batch_size"),
    ({"rbf_scale": "0.1"}, "rbf_scale"),            # a number in quotes, which OmegaConf would convert
    ({"epochs": "10"}, "epochs"),
    ({"epochs": 10.5}, "epochs"),
    ({"epochs": True}, "epochs"),                   # JSON's true is not the integer 1
    ({"augment": 1}, "augment"),
    ({"augment": "true"}, "augment"),
    ({"mult_dims": [1, 2, "4", 4]}, "mult_dims"),
    ({"epochs": None}, "epochs"),
    ({"white_noise": "maybe"}, "white_noise"),
    ({"mult_dims": "1,2,4,4"}, "mult_dims"),
    ({"mult_dims": [[], [], [], []]}, "mult_dims"),
    ({"sigma_1": 0.001, "sigma_L": 0.01}, "sigma_1"),
    ({"resolution": 8, "npad": 8}, "resolution"),
    ({"schedule": "cosine"}, "schedule"),
    ({"loss_weighting": "snr"}, "loss_weighting"),
    ({"training_levels": "continuous"}, "training_levels"),
    ({"step_rule": "cosine"}, "step_rule"),
    ({"denoise_last": "maybe"}, "denoise_last"),
    ({"fmult": 0.0}, "fmult"),
    ({"fmult": 1.5}, "fmult"),
    ({"noise_kernel": "gaussian"}, "noise_kernel"),
    ({"noise_method": "svd"}, "noise_method"),
    ({"groups": 3}, "groups"),
    ({"val_size": 1.0}, "val_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"multilook": "sometimes"}, "multilook"),
    ({"data_grid": "pixels"}, "data_grid"),
])
def test_bad_configs_name_the_key(values, culprit):
    with pytest.raises(ConfigError, match=culprit):
        config_from_dict(values)


def test_defaults_fill_missing_keys():
    args = config_from_dict({"epochs": 3})
    assert args.epochs == 3 and args.batch_size == Arguments().batch_size


def run_train(tmp_path, cfg_values, savedir, *extra, data_dir=None):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(cfg_values))
    return run_command([sys.executable, "train.py", "--cfg", cfg, "--savedir", savedir, *extra],
                       data_dir=data_dir or tmp_path / "no-data")


def test_the_registry_names_a_methods_scripts_without_importing_torch():
    """What exps/*.sh ask: `python -m src.methods <method> <kind>`, cheap, 'gano' the README's 'gan'."""
    result = run_command([sys.executable, "-X", "importtime", "-m", "src.methods", "gano", "eval"])
    assert result.returncode == 0 and result.stdout == "eval_gano.py\n"
    assert "torch" not in result.stderr  # -X importtime lists every module imported
    result = run_command([sys.executable, "-m", "src.methods", "vae", "train"])
    assert result.returncode == 2 and "unknown method 'vae'; the methods: sbgm, gan" in result.stderr


@pytest.mark.slow
def test_train_rejects_a_bad_config_before_writing_anything(tmp_path):
    result = run_train(tmp_path, {"epoch": 10}, tmp_path / "run")
    assert result.returncode != 0
    assert "epoch" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_names_a_missing_data_dir(tmp_path):
    result = run_train(tmp_path, {"epochs": 1}, tmp_path / "run")
    assert result.returncode != 0
    assert "no-data" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_saved_config_wins_unless_override(tmp_path):
    """A restarted job keeps its saved config; --override_cfg uses --cfg (and a bad one changes nothing)."""
    savedir = tmp_path / "run"
    savedir.mkdir()
    saved = json.dumps({"epochs": 5, "sigma_1": 3.0})
    (savedir / "config.json").write_text(saved)
    # The saved config is used, so the typo in --cfg does not matter (the run then stops on the missing data).
    result = run_train(tmp_path, {"epoch": 10}, savedir)
    assert f"Using the config saved in {savedir / 'config.json'}, not --cfg {tmp_path / 'cfg.json'}" in result.stdout
    assert "bad config key" not in result.stderr
    # With --override_cfg the typo is reported, and the saved config is left as it was.
    result = run_train(tmp_path, {"epoch": 10}, savedir, "--override_cfg")
    assert result.returncode != 0 and "epoch" in result.stderr
    assert (savedir / "config.json").read_text() == saved


def test_integers_are_floats_and_null_is_allowed_where_declared():
    args = config_from_dict({"sigma_1": 20, "ema_rate": None, "channels": None})
    assert type(args.sigma_1) is float and args.sigma_1 == 20.0 and args.ema_rate is None


def test_command_line_values_are_read_as_json_but_for_string_keys():
    read = from_command_line({"sampler": "heun", "sampler_steps": "10", "denoise_last": "false",
                              "epsilon": "1e-3", "data_key": "null", "L": 3})
    assert read == {"sampler": "heun", "sampler_steps": 10, "denoise_last": False, "epsilon": 1e-3,
                    "data_key": None, "L": 3}
    changes = dict([parse_key_value("sampler=heun"), parse_key_value("sampler_steps=10")])
    args = DIFFUSION.with_sampler(Arguments(), changes)
    assert (args.sampler, args.sampler_steps) == ("heun", 10)
    for bad, culprit in (("sampler_steps=ten", "sampler_steps"), ("denoise_last=False", "denoise_last")):
        with pytest.raises(ConfigError, match=f"'{culprit}'"):
            DIFFUSION.with_sampler(Arguments(), dict([parse_key_value(bad)]))


def test_key_value_items_split_at_the_first_equals_sign():
    assert parse_key_value("sigma_1=20") == ("sigma_1", "20")
    assert parse_key_value("noise_kernel=a=b") == ("noise_kernel", "a=b")
    for bad in ("sigma_1", "=20", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not KEY=VALUE"):
            parse_key_value(bad)


# --- Arbitrary JSON (hypothesis): either a ConfigError or a whole, valid config ---------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6),
                                                                                          children, max_size=3),
                           max_leaves=8)
FIELD_NAMES = [f.name for f in fields(Arguments)]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=10), json_values, max_size=6))
def test_arbitrary_json_objects_are_refused_by_name_or_give_a_valid_config(values):
    try:
        args = config_from_dict(values)
    except ConfigError as error:
        # The culprit is named: 'key', or an element of it, 'key[0]'.
        assert any(re.search(rf"'{re.escape(key)}[\['.]", str(error)) for key in values), (values, str(error))
        return
    # Accepted: every field of the declared type, and the config survives its own round trip.
    for f in fields(Arguments):
        value = getattr(args, f.name)
        declared = {int: int, float: (int, float), bool: bool, str: str}.get(f.type)
        if declared is not None:
            assert isinstance(value, declared) and (f.type is bool or not isinstance(value, bool)), (f.name, value)
    assert config_from_dict(asdict(args)) == args
