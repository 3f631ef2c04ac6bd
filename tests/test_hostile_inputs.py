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
    _issue_44_world(t, model)
    return t


def _flipped(path: Path, offset: int) -> bytes:
    "The bytes of `path` with the byte at `offset` inverted (negative: from the end)."
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    return bytes(raw)


def _issue_44_world(t: Path, model: PudNet):
    "The inputs of the second round of hostile cases (issue 44), beside the first round's in the world folder."
    with torch.no_grad():
        for p in model.parameters(): p.fill_(0.5)
        big = {k: v * 1e30 if v.is_floating_point() else v for k, v in model.state_dict().items()}  # --lr 1e30's
        for p in model.generators.parameters(): p.fill_(1e5)  # sane-looking parameters whose predictions overflow
    tensors, meta = load_tensors(t / 'ck.safetensors')
    save_tensors(t / 'e30.safetensors', big, meta)
    model.save(t / 'explodes.safetensors')
    save_tensors(t / 'float-rank.safetensors', tensors, {**meta, 'config': meta['config'].replace('"gen_rank": null', '"gen_rank": 2.5')})
    save_tensors(t / 'cut-config.safetensors', tensors, {**meta, 'config': meta['config'][:-9]})
    (t / 'flipped-header.safetensors').write_bytes(_flipped(t / 'ck.safetensors', 12))
    x = (np.arange(30 * 64 * 64) % 251).astype(np.uint8).reshape(30, 64, 64)
    np.savez(t / 'big.npz', x=x, y=np.arange(30) % 2)
    (t / 'crc.npz').write_bytes(_flipped(t / 'big.npz', 40_000))  # inside `x`: the zip's CRC-32 fails
    np.savez_compressed(t / 'z.npz', x=x, y=np.arange(30) % 2)
    (t / 'stream.npz').write_bytes(_flipped(t / 'z.npz', 60))  # the deflate stream of `x` no longer decodes
    (t / 'z.npz').unlink()
    np.savez(t / 'far.npz', x=x, y=np.r_[np.arange(29) % 2, 2**40])  # one label of 2**40
    np.savez(t / 'one-image-class.npz', x=x, y=np.r_[np.zeros(29, int), 1])
    np.savez(t / 'x-only.npz', x=x)
    image_folder(t / 'fifo')
    os.mkfifo(t / 'fifo' / '0' / 'a.png')  # a pipe named like an image: open() waits for a writer forever


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
     ['`x` decode to 1,920 bytes, over the limit of 1,073 bytes', '--max_data_gb']),
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
    # issue 44: diverged models, damaged files, raw errors, labels that would allocate without end
    ('train --lr 1e30 (diverges in one step)', 'train --lr 1e30 --steps 3 --tasks_per_step 1 --checkpoint_every 1 '
     '--checkpoint {t}/diverged.safetensors --quiet', ['the PudNet after step 0 holds values up to', 'no checkpoint was written']),
    ('predict from a checkpoint of finite 1e30 weights', 'predict {t}/e30.safetensors {npz} --out {net}',
     ['values up to 5e+29', 'training diverged', '--lr']),
    ('evaluate a checkpoint of finite 1e30 weights', 'evaluate {t}/e30.safetensors --data {npz}', ['values up to 5e+29']),
    ('predict from a checkpoint whose predictions overflow', 'predict {t}/explodes.safetensors {npz} --out {net}',
     ['the predicted network holds NaN or Inf', 'diverged in training']),
    ('evaluate a checkpoint whose predictions overflow', 'evaluate {t}/explodes.safetensors --data {t}/big.npz --quiet',
     ['the predicted network holds NaN or Inf']),
    ('a float gen_rank in a checkpoint config', 'predict {t}/float-rank.safetensors {npz} --out {net}',
     ['config is damaged or invalid', 'gen_rank must be None or an integer >= 1, got 2.5']),
    ('a checkpoint config cut short', 'predict {t}/cut-config.safetensors {npz} --out {net}', ['config is damaged or invalid']),
    ('a flipped byte in a checkpoint header', 'predict {t}/flipped-header.safetensors {npz} --out {net}',
     ['not a valid pudnet checkpoint']),
    ('an .npz with a flipped byte (bad CRC)', 'predict {ck} {t}/crc.npz --out {net}', ['damaged', 'Bad CRC-32']),
    ('an .npz with a corrupt deflate stream', 'predict {ck} {t}/stream.npz --out {net}', ['damaged', 'Error -3']),
    ('a label of 2**40, evaluated', 'evaluate {ck} --data {t}/far.npz', ['labels must lie in 0..29', 'np.unique']),
    ('evaluate a class of one image', 'evaluate {ck} --data {t}/one-image-class.npz',
     ["class '1' has only 1 image(s)", 'at least 11 per class']),
    ('train --n_shot -1', 'train --n_shot -1', ['--n_shot must be at least 1, got -1']),
    ('train --n_shot 0', 'train --n_shot 0', ['--n_shot must be at least 1, got 0']),
    ('predict --sample_size 0: the float copy counts', 'predict {ck} {t}/big.npz --out {net} --sample_size 0 --max_data_gb 0.00015',
     ['30 images and the float copy of the 30 read', 'over the limit']),
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


# issue 44, continued: what cannot be a command line row -- the Python API, a FIFO, memory, two processes

def deadline(seconds: float):
    "A context in which a call that blocks past `seconds` raises TimeoutError (a FIFO opened for reading, say)."
    import contextlib, signal
    @contextlib.contextmanager
    def guard():
        def expire(*_): raise TimeoutError(f"blocked for over {seconds} s")
        old = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try: yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    return guard()


@pytest.mark.parametrize('skip', [[], ['--skip_bad_images']], ids=['plain', '--skip_bad_images'])
def test_a_fifo_named_like_an_image_is_skipped_not_opened(world, capsys, skip):
    before = digest(world)
    out_file = world / 'fifo-out' / 'net.safetensors'
    with deadline(60): status, out, err = run(['predict', world / 'ck.safetensors', world / 'fifo', '--out', out_file, *skip], capsys)
    assert status == 0 and 'predicted a convnet3 for 12 images' in out, err
    assert err.strip() == f"pudnet: warning: {world / 'fifo' / '0'}: skipped 1 entries that are not regular files (a FIFO, " \
                          f"socket or device named like an image), e.g. {world / 'fifo' / '0' / 'a.png'}"
    out_file.unlink()
    (world / 'fifo-out').rmdir()
    assert digest(world) == before


def test_predict_needs_no_labels_and_never_reads_them(world, capsys):
    "An .npz with x alone is enough (as the help says), and a label of 2**40 costs predict nothing: y is not read."
    before = digest(world)
    help_text = command_help('predict', capsys)
    assert '.npz with x (a y in it is not read)' in help_text and '(and y)' not in help_text
    for data in ('x-only.npz', 'far.npz'):
        status, out, err = run(['predict', world / 'ck.safetensors', world / data, '--out', world / 'n.safetensors'], capsys)
        assert status == 0 and 'predicted a convnet3 for 30 images' in out, err
        (world / 'n.safetensors').unlink()
    assert digest(world) == before


def command_help(name: str, capsys) -> str:
    "The text of `pudnet NAME --help`, on one line."
    assert run([name, '--help'], capsys)[0] == 0
    return ' '.join(capsys.readouterr().out.split()) or ' '.join(pudnet.cli.command_parser(name).format_help().split())


def test_evaluate_never_suggests_an_option_it_lacks(world, capsys):
    status, _, err = run(['evaluate', world / 'ck.safetensors', '--data', world / 'one-image-class.npz'], capsys)
    assert status == 2 and 'p_per_class' not in err, err
    assert '--p_per_class' not in command_help('evaluate', capsys)


@pytest.fixture(scope='module')
def tiny_model(world):
    return PudNet.load(world / 'ck.safetensors')


X = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1  # pixels as to_float gives them


def _spike():
    x = X.clone()
    x[3, 0, 5, 5] = 1e30
    return x


# the Python API: (id, call on a PudNet, the error's type and words -- or None and the words of the note it warns)
API_ROWS = [
    ('one pixel of 1e30', lambda m: m.predict(_spike()), ValueError, ['far outside [-1, 1]', 'to_float']),
    ('inputs scaled by 1e4', lambda m: m.predict(X * 1e4), ValueError, ['far outside [-1, 1]', 'x / 127.5 - 1']),
    ('floats in 0..255', lambda m: m.predict((X + 1) * 127.5), ValueError, ['x / 127.5 - 1']),
    ('NaN pixels', lambda m: m.predict(X.where(X > 0, float('nan'))), ValueError, ['NaN or Inf pixels']),
    ('uint8 pixels', lambda m: m.predict((X > 0).to(torch.uint8)), TypeError, ['floats in [-1, 1]', 'to_float']),
    ('batch_size 0', lambda m: m.predict(X, batch_size=0), ValueError, ['batch_size must be a positive integer (images per batch), got 0']),
    ('batch_size -1', lambda m: m.predict(X, batch_size=-1), ValueError, ['batch_size must be a positive integer (images per batch), got -1']),
    ('float64 images', lambda m: m.predict(X.double()), None, ['images are torch.float64: converted to torch.float32']),
    ('float16 images', lambda m: m.predict(X.half()), None, ['images are torch.float16: converted to torch.float32']),
    ('bfloat16 images', lambda m: m.predict(X.bfloat16()), None, ['images are torch.bfloat16: converted']),
    ('floats in [0, 1]', lambda m: m.predict((X + 1) / 2), None, ['none below 0: floats in [0, 1]?', 'x * 2 - 1']),
    ('standardised images', lambda m: m.predict(X * 3), None, ['outside [-1, 1]']),
]


@pytest.mark.parametrize('call, error, words', [pytest.param(*r[1:], id=r[0]) for r in API_ROWS])
def test_the_api_checks_its_inputs_like_the_command_line(tiny_model, call, error, words):
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        if error is None: net = call(tiny_model)
        else:
            with pytest.raises(error) as e: call(tiny_model)
    if error is None:  # converted or accepted, with a note; the network is sane
        notes = [str(w.message) for w in caught]
        assert len(notes) == 1 and '\n' not in notes[0] and all(w in notes[0] for w in words), notes
        assert torch.isfinite(net(X[:2])).all()
    else:
        message = str(e.value)
        assert '\n' not in message and all(w in message for w in words), message


def test_a_checkpoint_whose_prediction_overflows_is_refused_by_the_api(world):
    with pytest.raises(FloatingPointError, match='the predicted network holds NaN or Inf'):
        PudNet.load(world / 'explodes.safetensors').predict(X)


def test_a_second_train_into_a_locked_checkpoint_is_refused(world, capsys):
    from pudnet.training import checkpoint_lock
    ck = world / 'locked.safetensors'
    with checkpoint_lock(ck):  # as another `pudnet train` holds it while it runs
        status, _, err = run(['train', '--steps', 1, '--checkpoint', ck, '--quiet'], capsys)
    assert status == 2 and f'is training into {ck}' in err and 'another checkpoint path' in err, err
    assert not ck.exists() and not (world / '.locked.safetensors.lock').exists()


def test_train_says_that_it_resumed(tmp_path, capsys):
    args = ['train', '--steps', 1, '--tasks_per_step', 1, '--width', 8, '--checkpoint', tmp_path / 'ck.safetensors', '--quiet']
    assert run(args, capsys)[0] == 0
    status, out, err = run([*args[:2], 2, *args[3:]], capsys)
    assert status == 0 and f"resumed from step 1 of {tmp_path / 'ck.safetensors'}" in out, out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ck.safetensors']  # no lock, no previous checkpoint left


PEAK_PROBE = '''import resource, sys
from pudnet.cli import main
status = main(sys.argv[1:])
print('PEAK_MB', status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)'''


def peak_mb(*commands) -> list:
    "Peak resident memory (MB) of a fresh interpreter per command (a list of `pudnet` arguments), all run at once."
    import subprocess, sys
    runs = [subprocess.Popen([sys.executable, '-c', PEAK_PROBE, *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
            for args in commands]
    peaks = []
    for r in runs:
        out, err = r.communicate(timeout=300)
        line = next((l for l in out.splitlines() if l.startswith('PEAK_MB')), None)
        assert line is not None and line.split()[1] == '0', out + err
        peaks.append(float(line.split()[2]))
    return peaks


def test_memory_is_bounded_by_what_is_read(world, tmp_path):
    """predict on a 256 MB .npz (a 270 KB file of zeros) peaks at about the decoded size above an interpreter that
    predicts for 30 images (it was 3.3x: every image converted to float, though 64 are read); 8 photos of 4000 x 3000
    (36 MB each decoded) take a few MB (they were decoded at full size before resizing)."""
    from PIL import Image
    n, side = 2**16, 64
    np.savez_compressed(tmp_path / 'big.npz', x=np.zeros((n, side, side), np.uint8))
    decoded_mb = n * side * side / 2**20
    photo = Image.fromarray(np.add.outer(np.arange(3000) // 12, np.arange(4000) // 16).astype(np.uint8))
    for i in range(8):
        (tmp_path / 'photos' / str(i % 2)).mkdir(parents=True, exist_ok=True)
        photo.convert('RGB').save(tmp_path / 'photos' / str(i % 2) / f'{i}.jpg', quality=70)
    ck = world / 'ck.safetensors'
    base, npz, photos = peak_mb(*(['predict', ck, data, '--out', tmp_path / f'{i}.safetensors']
                                  for i, data in enumerate([world / 'd.npz', tmp_path / 'big.npz', tmp_path / 'photos'])))
    print(f"peak MB: base {base:.0f}, 256 MB npz {npz:.0f}, photos {photos:.0f}")
    assert npz - base < 1.25 * decoded_mb, (base, npz)
    assert photos - base < 0.1 * 8 * 36, (base, photos)
