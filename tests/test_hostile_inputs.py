"""Hostile inputs, one row each: the command refuses with one line naming the problem, exit status 2, no traceback,
and no input file changed (sha256 of every file before and after). Add a row for every new way to hold pudnet wrong."""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pudnet.cli
from pudnet.cli import main
from pudnet.core import PudNet, PudNetConfig, load_tensors, save_tensors

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')


def image_folder(root: Path, n: int = 12, sizes=None) -> Path:
    "A tiny ImageFolder: n grey 8x8 PNGs (or `sizes[i]`) in class folders 0 and 1."
    for i in range(n):
        (root / str(i % 2)).mkdir(parents=True, exist_ok=True)
        w, h = sizes[i] if sizes else (8, 8)
        Image.fromarray(np.full((h, w), 20 * i, np.uint8)).save(root / str(i % 2) / f'{i}.png')
    return root


@pytest.fixture(scope='module')
def world(tmp_path_factory) -> Path:
    "Every input of the rows, in one folder: checkpoints (good, NaN, no config), image folders and .npz files."
    t = tmp_path_factory.mktemp('hostile')
    torch.manual_seed(0)
    tiny = dict(width=8, sketch_dim=16, sketch_width=8, gen_hidden=8)
    model = PudNet(PudNetConfig(n_train_classes=6, **tiny))  # untrained: enough for the checks
    model.save(t / 'ck.safetensors')
    (t / 'ck-link').symlink_to(t / 'ck.safetensors')
    save_tensors(t / 'no-config.safetensors', model.state_dict(), {'format': 'pudnet', 'kind': 'model'})
    tensors, meta = load_tensors(t / 'ck.safetensors')  # its config edited to a width that would need terabytes
    save_tensors(t / 'huge.safetensors', tensors, {**meta, 'config': meta['config'].replace('"width": 8', '"width": 10000000')})
    with torch.no_grad(): next(model.parameters()).view(-1)[0] = float('nan')
    model.save(t / 'nan.safetensors')
    image_folder(t / 'folder')
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save(t / 'noise.png')
    cut = (t / 'noise.png').read_bytes()[:80]  # 80 of its 140 bytes
    for name, data in [('zero', b''), ('text', b'just text'), ('cut', cut)]:
        (image_folder(t / name) / '0' / f'{name}.png').write_bytes(data)
    (image_folder(t / 'loop') / 'all').symlink_to(t / 'loop')  # a class folder linked to the root: would loop
    image_folder(t / 'mixed', 4, [(8, 8), (8, 8), (9, 8), (8, 8)])
    (t / 'no-classes').mkdir()
    (t / 'no-images' / 'a').mkdir(parents=True)
    (t / 'no-images' / 'a' / 'notes.txt').write_text('no images here')
    x = np.zeros((30, 8, 8), np.uint8)
    np.savez(t / 'd.npz', x=x, y=np.arange(30) % 2)
    np.savez(t / 'f255.npz', x=x.astype(np.float32) + 200, y=np.arange(30) % 2)
    np.savez(t / 'f1.npz', x=x.astype(np.float32) + 0.5, y=np.arange(30) % 2)
    np.save(t / 'lone.npy', x)
    (t / 'lone.npy').rename(t / 'lone.npz')
    (t / 'text.npz').write_text('not a zip')
    os.mkfifo(t / 'pipe')
    return t


def digest(root: Path) -> dict:
    "sha256 of every regular file under `root` (links and pipes not followed), by relative path."
    files = (Path(top) / n for top, _, names in os.walk(root) for n in names)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if p.is_file() and not p.is_symlink()}


def run(args: list, capsys) -> tuple:
    "pudnet.cli.main(args) in this process: (exit status, stdout, stderr)."
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


# (id, command line, words its one-line message must hold); {t}: the world folder, {ck}, {npz}, {net}: files in it
ROWS = [
    # outputs that would destroy an input
    ('predict --out = its checkpoint', 'predict {ck} {npz} --out {ck}', ['--out', 'is the checkpoint']),
    ('predict --out = a link to its checkpoint', 'predict {ck} {npz} --out {t}/ck-link', ['is the checkpoint']),
    ('predict --out = its data', 'predict {ck} {npz} --out {npz}', ['is the data']),
    ('predict --out inside its image folder', 'predict {ck} {t}/folder --out {t}/folder/0/0.png', ['lies inside the']),
    ('predict --out = a folder', 'predict {ck} {npz} --out {t}/folder', ['is a folder']),
    ('predict --out = a pipe (not a regular file)', 'predict {ck} {npz} --out {t}/pipe', ['not a regular file']),
    ('predict --out under a file', 'predict {ck} {npz} --out {npz}/net.safetensors', ['is a file, so no folder']),
    ('evaluate --out = its data', 'evaluate {ck} --data {npz} --out {npz}', ['is the data']),
    ('evaluate --out = its checkpoint', 'evaluate {ck} --data {npz} --out {ck}', ['is the checkpoint']),
    ('train --checkpoint = a folder', 'train --steps 1 --checkpoint {t}/folder', ['--checkpoint', 'is a folder']),
    ('demo --out = a file', 'demo --out {npz}', ['is not a folder']),
    ('bench --out = a file', 'bench --out {npz}', ['is not a folder']),
    # nonsense options
    ('train --steps 0', 'train --steps 0', ['--steps must be at least 1, got 0']),
    ('train --steps -5', 'train --steps -5', ['--steps must be at least 1, got -5']),
    ('train --tasks_per_step 0', 'train --tasks_per_step 0', ['--tasks_per_step must be at least 1']),
    ('train --checkpoint_every 0', 'train --checkpoint_every 0', ['--checkpoint_every must be at least 1']),
    ('train --p_per_class 0', 'train --p_per_class 0', ['--p_per_class must be at least 1']),
    ('train --q_per_class 0', 'train --q_per_class 0', ['--q_per_class must be at least 1']),
    ('train --gen_rank 0', 'train --gen_rank 0', ['--gen_rank must be at least 1']),
    ('train --lr inf', 'train --lr inf', ['--lr must be a positive finite number, got inf']),
    ('train --lr nan', 'train --lr nan', ['--lr must be a positive finite number']),
    ('train --lr -1', 'train --lr -1', ['--lr must be a positive finite number']),
    ('train --device gpu', 'train --device gpu', ["--device 'gpu' is not a device"]),
    ('train --device cuda without CUDA', 'train --device cuda', ['no usable CUDA GPU', '--device cpu']),
    ('demo --steps 0', 'demo --steps 0', ['--steps must be at least 1']),
    ('demo --test_tasks 0', 'demo --test_tasks 0', ['--test_tasks must be at least 1']),
    ('demo --scratch_tasks -1', 'demo --scratch_tasks -1', ['--scratch_tasks must be at least 0']),
    ('demo --epochs 0', 'demo --epochs 0', ['--epochs takes comma-separated positive integers']),
    ('evaluate --tasks 0', 'evaluate {ck} --data {npz} --tasks 0', ['--tasks must be at least 1']),
    ('evaluate --ways 0', 'evaluate {ck} --data {npz} --ways 0', ['--ways must be at least 2']),
    ('evaluate --ways 1', 'evaluate {ck} --data {npz} --ways 1', ['--ways must be at least 2']),
    ('evaluate --scratch_tasks -1', 'evaluate {ck} --data {npz} --scratch_tasks -1', ['--scratch_tasks must be']),
    ('evaluate --epochs 1,x', 'evaluate {ck} --data {npz} --epochs 1,x', ['comma-separated positive integers']),
    ('evaluate --protocol and --data', 'evaluate {ck} --data {npz} --protocol digits-set', ['exactly one of']),
    ('evaluate --device cuda:0 without CUDA', 'evaluate {ck} --data {npz} --device cuda:0', ['no usable CUDA GPU']),
    ('bench --budget -1', 'bench --budget -1 --out {t}/bench', ['--budget must be a positive finite number']),
    ('bench --budget 0', 'bench --budget 0 --out {t}/bench', ['--budget must be a positive finite number']),
    ('bench --n_tasks 0', 'bench --n_tasks 0 --out {t}/bench', ['--n_tasks must be at least 1']),
    ('bench --scratch_tasks -1', 'bench --scratch_tasks -1 --out {t}/bench', ['--scratch_tasks must be at least 0']),
    ('bench --device tpu', 'bench --device tpu --out {t}/bench', ["--device 'tpu' is not a device", 'auto']),
    ('predict --max_image_pixels 0', 'predict {ck} {npz} --max_image_pixels 0', ['--max_image_pixels must be']),
    ('predict --max_data_gb 0', 'predict {ck} {npz} --max_data_gb 0', ['--max_data_gb must be a positive finite']),
    # data read correctly or refused
    ('a zero-byte .png', 'predict {ck} {t}/zero --out {net}', ['zero.png: cannot decode', '--skip_bad_images']),
    ('a text file named .png', 'predict {ck} {t}/text --out {net}', ['text.png: cannot decode']),
    ('a truncated .png', 'predict {ck} {t}/cut --out {net}', ['cut.png: cannot decode']),
    ('a class folder linked to the root', 'predict {ck} {t}/loop --out {net}', ['is a link to', 'inside or above']),
    ('images of two sizes', 'predict {ck} {t}/mixed --out {net}', ['images differ in size', '9x8']),
    ('a folder without class folders', 'predict {ck} {t}/no-classes --out {net}', ['no class folders']),
    ('class folders without images', 'predict {ck} {t}/no-images --out {net}', ['hold no image files']),
    ('an image over --max_image_pixels', 'predict {ck} {t}/folder --out {net} --max_image_pixels 63',
     ['8x8 = 64 pixels, over the limit of 63', '--max_image_pixels']),
    ('an .npz over --max_data_gb', 'predict {ck} {npz} --out {net} --max_data_gb 0.000001',
     ['decode to 2,160 bytes, over the limit of 1,073 bytes', '--max_data_gb']),
    ('a .npy renamed .npz', 'predict {ck} {t}/lone.npz --out {net}', ['single .npy array', 'np.savez']),
    ('a text file named .npz', 'predict {ck} {t}/text.npz --out {net}', ['not a readable .npz file']),
    ('float pixels in 0..255', 'predict {ck} {t}/f255.npz --out {net}',
     ["must be uint8", "span 200..200", "x.round().astype('uint8')"]),
    ('float pixels in 0..1', 'predict {ck} {t}/f1.npz --out {net}', ["(x * 255).round().astype('uint8')"]),
    ('data = a pipe', 'predict {ck} {t}/pipe --out {net}', ['not a regular file']),
    ('data that does not exist', 'predict {ck} {t}/missing.npz --out {net}', ['does not exist']),
    # checkpoints
    ('a NaN checkpoint', 'predict {t}/nan.safetensors {npz} --out {net}', ['NaN or Inf in 1 tensors', '--lr']),
    ('a NaN checkpoint, evaluated', 'evaluate {t}/nan.safetensors --data {npz}', ['NaN or Inf']),
    ('a config edited to a huge width', 'predict {t}/huge.safetensors {npz} --out {net}', ['do not fit its config']),
    ('a checkpoint without its config', 'predict {t}/no-config.safetensors {npz} --out {net}', ["lacks its 'config'"]),
    ('an .npz given as the checkpoint', 'predict {npz} {npz} --out {net}', ['not a valid pudnet checkpoint']),
]


def rows(table: list) -> list:
    "The table as pytest parameters named by their ids; rows about a missing GPU run only where there is none."
    return [pytest.param(args, words, id=name, marks=NO_CUDA if 'without CUDA' in name else ())
            for name, args, words in table]


@pytest.mark.parametrize('args, words', rows(ROWS))
def test_hostile_input_is_refused_in_one_line(world, capsys, args, words):
    before = digest(world)
    files = dict(t=world, ck=world / 'ck.safetensors', npz=world / 'd.npz', net=world / 'n.safetensors')
    status, _, err = run(args.format(**files).split(), capsys)
    lines = err.strip().splitlines()
    assert status == 2, (status, err)
    assert 'Traceback' not in err and len(lines) == 1, err
    assert lines[0].startswith('pudnet ') and ': error: ' in lines[0], err
    for w in words: assert w in lines[0], (w, lines[0])
    assert digest(world) == before, 'an input file changed, or a file appeared'


def test_skip_bad_images_turns_an_undecodable_file_into_a_warning(world, capsys):
    before = digest(world)
    out_file = world / 'out' / 'net.safetensors'
    args = ['predict', world / 'ck.safetensors', world / 'zero', '--out', out_file, '--skip_bad_images']
    status, out, err = run(args, capsys)
    assert status == 0 and 'predicted a convnet3 for 12 images' in out, err
    assert err.strip() == f"pudnet: warning: skipped {world / 'zero' / '0' / 'zero.png'}: cannot decode this image " \
                          f"(UnidentifiedImageError: cannot identify image file '{world / 'zero' / '0' / 'zero.png'}')"
    out_file.unlink()
    (world / 'out').rmdir()
    assert digest(world) == before


def test_a_link_inside_a_class_folder_is_not_followed(tmp_path, capsys):
    "A link from class 0 up to the root would read the tree again and again as class 0: it is passed by (a warning)."
    root = image_folder(tmp_path / 'data')
    (root / '0' / 'up').symlink_to(root)
    from pudnet.data import load_image_folder
    with pytest.warns(UserWarning, match='1 linked folder'): data = load_image_folder(root)
    assert len(data) == 12 and data.y.bincount().tolist() == [6, 6]


def test_16_bit_images_keep_their_grey_levels(tmp_path):
    "A 16-bit PNG is scaled to 8 bits by its range, not clipped to two levels (0 and 255)."
    from pudnet.data import load_image_folder
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1040).astype(np.uint16)  # 0..65520
    for c in 'ab': Image.fromarray(ramp).save(tmp_path / c / 'deep.png')
    x = load_image_folder(tmp_path).x
    assert x.shape == (2, 3, 8, 8) and len(x.unique()) == 64 and int(x.max()) == 255


def test_a_failed_write_prints_the_records_and_says_why(world, capsys, monkeypatch):
    def full_disk(path, records): raise OSError(28, 'No space left on device', str(path))
    monkeypatch.setattr(pudnet.cli, 'write_records', full_disk)
    status, out, err = run(['evaluate', world / 'ck.safetensors', '--data', world / 'd.npz', '--tasks', 1, '--quiet',
                            '--out', world / 'r.json'], capsys)
    assert status == 2 and 'could not write the records' in err and 'No space left on device' in err, err
    records = json.loads(out[out.index('['):out.rindex(']') + 1])  # the JSON printed after the table
    assert records[0]['method'] == 'PudNet' and records[0]['n_tasks'] == 1
    assert not (world / 'r.json').exists()


def test_a_failed_save_says_why(world, capsys, monkeypatch):
    def read_only(*args): raise OSError(30, 'Read-only file system')
    monkeypatch.setattr(pudnet.cli, 'save_network', read_only)
    status, _, err = run(['predict', world / 'ck.safetensors', world / 'd.npz', '--out', world / 'n.safetensors'],
                         capsys)
    assert status == 2 and 'could not save the network' in err and 'Read-only file system' in err, err


def test_a_diverged_training_is_refused(world, capsys, monkeypatch):
    "If meta-training ends with NaN in the model, `train` says so (exit 2) instead of reporting a model."
    def diverge(model, *args, **kwargs):
        with torch.no_grad(): next(model.parameters()).fill_(float('nan'))
        return []
    monkeypatch.setattr(pudnet.cli, 'meta_train', diverge)
    status, _, err = run(['train', '--steps', 1, '--checkpoint', world / 'diverged.safetensors', '--quiet'], capsys)
    assert status == 2 and 'training diverged' in err and 'delete' in err, err


def test_debug_shows_the_traceback(world, capsys, monkeypatch):
    args = ['predict', world / 'ck.safetensors', world / 'lone.npz', '--out', world / 'n.safetensors']
    status, _, err = run(args + ['--debug'], capsys)
    assert status == 2 and 'Traceback' in err and err.strip().endswith('np.savez(path, x=images, y=labels)')
    monkeypatch.setenv('PUDNET_DEBUG', '1')
    assert 'Traceback' in run(args, capsys)[2]


def test_argparse_errors_exit_2_without_a_traceback(capsys):
    status, _, err = run(['train', '--steps', 'abc'], capsys)
    assert status == 2 and "invalid int value: 'abc'" in err and 'Traceback' not in err
    assert run(['train', '--help'], capsys)[0] == 0
