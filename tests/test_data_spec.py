"""The feature spec: JSON round trip, the stream-order check, widths against a backbone."""

from __future__ import annotations

import json

import pytest

from readcli.data.feature_spec import StreamSpec, VideoFeatureSpec
from readcli.errors import InputFileError, InvalidValueError


def spec(*streams: tuple[str, int], **kw: object) -> VideoFeatureSpec:
    return VideoFeatureSpec(streams=tuple(StreamSpec(n, d) for n, d in streams), text_dim=512, **kw)  # type: ignore[arg-type]


def test_json_round_trip_keeps_order_and_settings() -> None:
    original = spec(("slowfast", 2304), ("clip", 512), max_v_l=None, clip_len=1.5, tef=False)
    text = json.dumps(original.to_json())
    again = VideoFeatureSpec.from_json(json.loads(text))
    assert again == original
    assert again.stream_names == ("slowfast", "clip")
    assert again.video_dim == 2304 + 512  # no TEF
    assert spec(("clip", 512)).video_dim == 514


def test_from_json_refuses_unknown_keys_and_other_formats() -> None:
    good = spec(("clip", 512)).to_json()
    with pytest.raises(InputFileError, match="bundle: unknown keys colour"):
        VideoFeatureSpec.from_json({**good, "colour": 1}, source="bundle")
    with pytest.raises(InputFileError, match="format 7, expected 1"):
        VideoFeatureSpec.from_json({**good, "format": 7})
    with pytest.raises(InputFileError, match="dim must be a positive integer"):
        VideoFeatureSpec.from_json({**good, "video_streams": [{"name": "clip", "dim": 0}]})


def test_stream_order_mismatch_names_both_orders() -> None:
    bundle = spec(("slowfast", 2304), ("clip", 512))
    data = spec(("clip", 512), ("slowfast", 2304))
    with pytest.raises(InvalidValueError) as err:
        bundle.require_compatible(data)
    message = str(err.value)
    assert "bundle has [slowfast, clip]" in message and "data has [clip, slowfast]" in message
    assert "another order" in message
    bundle.require_compatible(spec(("slowfast", 2304), ("clip", 512), max_v_l=200))  # max lengths may differ


def test_width_flag_and_tef_mismatches_are_all_listed() -> None:
    bundle = spec(("clip", 512))
    other = VideoFeatureSpec(streams=(StreamSpec("clip", 768, l2_normalize=False),), text_dim=512, tef=False)
    with pytest.raises(InvalidValueError) as err:
        bundle.require_compatible(other)
    assert "width bundle 512 vs data 768" in str(err.value)
    assert "L2 normalisation bundle True vs data False" in str(err.value)
    assert "tef bundle True vs data False" in str(err.value)


def test_require_input_dims_says_expected_and_found() -> None:
    s = spec(("clip", 768))
    s.require_input_dims(video_dim=770, text_dim=512)
    with pytest.raises(InvalidValueError, match=r"expected 514, found 770 = 768 \(clip\) \+ 2 \(TEF\)"):
        s.require_input_dims(video_dim=514, text_dim=512, model="moment_detr_clip")


def test_invalid_specs_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="listed twice: clip"):
        spec(("clip", 512), ("clip", 512))
    with pytest.raises(InvalidValueError, match="max_v_l must be a positive integer or null"):
        spec(("clip", 512), max_v_l=0)
    with pytest.raises(InvalidValueError, match="plain directory name"):
        StreamSpec("../x", 3)


def test_audio_stream_round_trips_and_is_checked() -> None:
    audio = StreamSpec("audio", 2048, l2_normalize=False)
    with_audio = spec(("i3d", 2048), tef=False, audio=audio)
    assert "audio" not in spec(("clip", 512)).to_json()  # bundles without audio keep their old form
    again = VideoFeatureSpec.from_json(json.loads(json.dumps(with_audio.to_json())))
    assert again == with_audio and again.audio_dim == 2048
    with pytest.raises(InvalidValueError, match="audio features bundle 2048-wide vs data none"):
        with_audio.require_compatible(spec(("i3d", 2048), tef=False))
    with pytest.raises(InvalidValueError, match="audio width bundle 2048 vs data 128; audio L2"):
        with_audio.require_compatible(spec(("i3d", 2048), tef=False, audio=StreamSpec("audio", 128)))


def test_require_input_dims_names_the_audio_on_both_sides() -> None:
    video_only = spec(("i3d", 2048), tef=False)
    with_audio = spec(("i3d", 2048), tef=False, audio=StreamSpec("audio", 2048, l2_normalize=False))
    with_audio.require_input_dims(video_dim=2048, text_dim=512, audio_dim=2048)
    with_audio.require_input_dims(video_dim=2048, text_dim=512)  # None: the caller builds no audio
    with pytest.raises(InvalidValueError) as err:
        video_only.require_input_dims(video_dim=2048, text_dim=512, audio_dim=2048, model="backbone umt-s")
    message = str(err.value)
    assert message.startswith("features do not fit backbone umt-s: audio input: the backbone takes 2048-wide")
    assert "the data has none" in message and "\n" not in message
    with pytest.raises(
        InvalidValueError, match="the data has 2048-wide audio features .* the backbone takes no"
    ):
        with_audio.require_input_dims(video_dim=2048, text_dim=512, audio_dim=0, model="moment_detr")
    with pytest.raises(InvalidValueError, match="audio input width: expected 128, found 2048"):
        with_audio.require_input_dims(video_dim=2048, text_dim=512, audio_dim=128)
