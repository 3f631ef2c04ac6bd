"""The paper's suggested improvements (attention-pooled sketch, predicted BatchNorm scale/shift): they train on both
training paths, save and load, make the BatchNorm affine depend on the dataset, and leave older checkpoints loadable."""
import json

import torch

from pudnet.core import PudNet, PudNetConfig, load_tensors, save_tensors
from pudnet.data import to_float
from pudnet.fast import DevicePool, FastPredictor, fast_meta_train
from pudnet.training import TrainConfig, meta_train

IMPROVED = dict(n_train_classes=6, width=16, sketch_pool='attention', predict_bn=True)


def _tensors(net): return {k: v.clone() for k, v in net.state_dict().items()}


def test_improved_pudnet_trains_saves_and_predicts_the_same_network_after_loading(tmp_path, digits):
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(**IMPROVED))
    history = meta_train(model, digits, list(range(6)), TrainConfig(steps=6, tasks_per_step=2), progress=False)
    assert len(history) == 6 and all(h['loss'] == h['loss'] for h in history)
    offsets = [g.weight.abs().sum().item() for g in model.bn_generators]
    assert all(o > 0 for o in offsets), "the BatchNorm generators, zero at the start, must have been trained"
    assert model.sketch.score.weight.abs().sum().item() > 0, "the attention score, zero at the start, must have been trained"
    model.save(tmp_path / 'm.safetensors')
    again = PudNet.load(tmp_path / 'm.safetensors')
    assert again.config == model.config
    x = to_float(digits.select([6, 7]).x[:60])
    a, b = _tensors(model.predict(x)), _tensors(again.predict(x))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_predicted_batchnorm_affine_depends_on_the_dataset_and_the_fast_path_agrees(digits):
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(**IMPROVED))
    fast_meta_train(model, DevicePool(digits, list(range(6))), TrainConfig(steps=6, tasks_per_step=2, p_per_class=12, q_per_class=5),
                    amp=False)
    x1, x2 = to_float(digits.select([6, 7]).x[:60]), to_float(digits.select([8, 9]).x[:60])
    n1, n2 = _tensors(model.predict(x1)), _tensors(model.predict(x2))
    assert not torch.equal(n1['0.1.weight'], n2['0.1.weight']), "two datasets got the same BatchNorm scale"
    state = FastPredictor(model, sample_size=None).predict(x1)  # the exact path reads all of P, as PudNet.predict does
    for k in ('0.1.weight', '0.1.bias', '0.1.running_mean', '0.0.weight'):
        torch.testing.assert_close(state[k].float(), n1[k], rtol=1e-4, atol=1e-5)


def test_a_checkpoint_from_before_the_switches_loads_with_the_paper_defaults(tmp_path):
    torch.manual_seed(0)
    model = PudNet(PudNetConfig(width=16))
    config = json.loads(model.config.to_json())
    del config['sketch_pool'], config['predict_bn'], config['base_weights']  # what a checkpoint written before these fields holds
    save_tensors(tmp_path / 'old.safetensors', model.state_dict(), {'format': 'pudnet', 'kind': 'model', 'config': json.dumps(config)})
    old = PudNet.load(tmp_path / 'old.safetensors')
    assert old.config.sketch_pool == 'mean' and old.config.predict_bn is False and old.bn_generators is None
    assert old.config.base_weights is False and old.base is None
    assert load_tensors(tmp_path / 'old.safetensors')[0].keys() == old.state_dict().keys()
