#!/usr/bin/env python3
"""Writes the golden reference values the Rust front-end tests compare against.

The published NeuralSampleID / GraFPrint front end (neuralsampleid-spec.md §1) is
torchaudio: mean over channels, Resample(sr -> 16 kHz) with its defaults,
MelSpectrogram(n_fft 1024, hop 512, periodic Hann, center/reflect, power 2,
64 HTK bands 0-8 kHz, no norm), AmplitudeToDB(power, ref 1, amin 1e-10, no
top_db), 128-frame windows every 16 frames, short clips zero-padded to 4.08 s,
per-segment min-max. This script runs exactly that on the committed WAV clips.

    python3 -m venv venv && venv/bin/pip install -r scripts/golden/requirements.txt
    venv/bin/python scripts/golden/make_goldens.py

CI never runs it: its outputs in fixtures/golden/ are committed.
"""
import json
import pathlib
import wave

import numpy as np
import torch
import torchaudio

ROOT = pathlib.Path(__file__).resolve().parents[2]
AUDIO = ROOT / "fixtures" / "audio"
OUT = ROOT / "fixtures" / "golden"

FS = 16000
SEGMENT_SAMPLES = 65280  # 4.08 s
SEGMENT_FRAMES = 128
SEGMENT_HOP = 16

mel_transform = torchaudio.transforms.MelSpectrogram(
    sample_rate=FS, n_fft=1024, win_length=1024, hop_length=512, f_min=0.0, f_max=8000.0,
    n_mels=64, power=2.0, center=True, pad_mode="reflect", norm=None, mel_scale="htk",
)
to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)  # amin 1e-10, ref 1


def read_wav(path):
    """int16 PCM WAV -> (channels-mean mono float32 tensor, rate); samples / 32768."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, path
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    x = torch.from_numpy(pcm.reshape(-1, channels).T.copy()).mean(dim=0, keepdim=True)
    return x, rate


def log_mel(x):
    """(1, n) -> (frames, 64) float32 dB."""
    return to_db(mel_transform(x))[0].T.contiguous().numpy().astype(np.float32)


def segments(x):
    """(1, n) -> (n_seg, 64, 128) min-max normalised, as the encoder consumes them."""
    if x.shape[1] < SEGMENT_SAMPLES:
        x = torch.nn.functional.pad(x, (0, SEGMENT_SAMPLES - x.shape[1]))
    s = to_db(mel_transform(x))[0]  # (64, T)
    out = []
    for start in range(0, s.shape[1] - SEGMENT_FRAMES + 1, SEGMENT_HOP):
        seg = s[:, start:start + SEGMENT_FRAMES]
        lo, hi = seg.min(), seg.max()
        out.append(((seg - lo) / (hi - lo)).numpy())
    return np.stack(out).astype(np.float32)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {"torch": torch.__version__, "torchaudio": torchaudio.__version__, "files": {}}

    def save(name, array, source, what):
        np.save(OUT / name, np.ascontiguousarray(array, dtype=np.float32))
        manifest["files"][name] = {"source": source, "shape": list(array.shape), "what": what}

    fb = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 64, FS, norm=None, mel_scale="htk")
    save("melscale_fbanks.npy", fb.numpy(), None, "filterbank (513 bins x 64 bands)")

    x, rate = read_wav(AUDIO / "awakening-8s-16k.wav")
    assert rate == FS
    save("awakening-8s-16k.mel.npy", log_mel(x), "awakening-8s-16k.wav", "log-mel dB (frames x 64)")
    save("awakening-8s-16k.segments.npy", segments(x), "awakening-8s-16k.wav", "segments (n x 64 x 128)")

    x, rate = read_wav(AUDIO / "nebula-2.5s-16k.wav")
    assert rate == FS
    save("nebula-2.5s-16k.segments.npy", segments(x), "nebula-2.5s-16k.wav", "zero-padded to one segment")

    x, rate = read_wav(AUDIO / "media-threat-3s-44k.wav")
    y = torchaudio.transforms.Resample(rate, FS)(x)  # sinc, hann, width 6, rolloff 0.99
    save("media-threat-3s-44k.resampled.npy", y[0].numpy(), "media-threat-3s-44k.wav", "torchaudio 44.1->16 kHz")
    save("media-threat-3s-44k.mel.npy", log_mel(y), "media-threat-3s-44k.wav", "resampled, then log-mel")

    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for name, meta in manifest["files"].items():
        print(f"{name}: {meta['shape']}")


if __name__ == "__main__":
    main()
