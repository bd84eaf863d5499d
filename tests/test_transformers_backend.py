"""`transformers` with a tiny randomly-initialised GLM-OCR the test builds and saves.

The checkpoint is written the way the hub repo zai-org/GLM-OCR is laid out (config.json,
model.safetensors, preprocessor_config.json, tokenizer files naming Glm46VProcessor, a chat
template) and loaded through the backend's own loader, as a user's download would be. Its
output is noise; the test checks the plumbing: loading, one generation per region, regions
assembled with the layout's labels and boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
#: transformers' GLM-V processor builds numpy arrays in a way numpy 2 warns about
pytestmark = [
    pytest.mark.slow,  # needs torch and transformers
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

from scanrag import ConfigError, testing  # noqa: E402
from scanrag.config import Settings  # noqa: E402
from scanrag.ingest.parsers import get_parser, glm  # noqa: E402
from scanrag.ingest.parsers.ppdoclayout import detections  # noqa: E402
from scanrag.ingest.pipeline import parse_file  # noqa: E402

SPECIAL_TOKENS = [
    "<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
    "<|user|>", "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>",
    "<|begin_of_video|>", "<|end_of_video|>", "<|begin_of_box|>", "<|end_of_box|>",
    "<|image|>", "<|video|>",
]  # fmt: skip
#: GLM-V's chat layout for one user turn of images and text (thinking and tools left out).
CHAT_TEMPLATE = (
    "[gMASK]<sop>{% for message in messages %}"
    "{% if message.role == 'user' %}<|user|>\n"
    "{% for part in message.content %}"
    "{% if part.type == 'image' %}<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif part.type == 'text' %}{{ part.text }}{% endif %}"
    "{% endfor %}{% elif message.role == 'assistant' %}<|assistant|>\n{{ message.content }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_glm_ocr(folder: Path) -> Path:
    """A two-layer GLM-OCR with a character-level tokenizer, saved like the hub repo."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        Glm46VImageProcessorPil,
        GlmOcrConfig,
        GlmOcrForConditionalGeneration,
        PreTrainedTokenizerFast,
    )

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in [chr(c) for c in range(32, 127)] + ["\n", "[UNK]"]:
        vocab.setdefault(char, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="[UNK]",
        padding_side="left",
        additional_special_tokens=SPECIAL_TOKENS,
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    config = GlmOcrConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "max_position_embeddings": 2048,
            # mrope_section must sum to head_dim / 2
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [2, 1, 1], "partial_rotary_factor": 1.0},
            "eos_token_id": [ids["<|endoftext|>"]],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2, "hidden_size": 32, "num_heads": 4, "intermediate_size": 64,
            "out_hidden_size": 32,  # = the text hidden size
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "image_size": 56,
        },
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    GlmOcrForConditionalGeneration(config).save_pretrained(folder)
    # a small pixel budget keeps the vision tower to a few patches per crop
    image_processor = Glm46VImageProcessorPil(
        size={"shortest_edge": 28 * 28, "longest_edge": 56 * 56},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    image_processor.save_pretrained(folder)  # preprocessor_config.json, as on the hub
    tokenizer.save_pretrained(folder)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["processor_class"] = "Glm46VProcessor"  # what the hub repo names
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return folder


#: PP-DocLayoutV3's id2label, as GLM-OCR configures it: its 25 classes in alphabetical order.
PP_LABELS = sorted(glm.PP_LABELS)


def build_tiny_pp_doclayout(folder: Path) -> Path:
    """A PP-DocLayoutV3 with a thin backbone and 20 queries, GLM-OCR's 25 layout classes."""
    from transformers import PPDocLayoutV3Config, PPDocLayoutV3ForObjectDetection

    backbone = {
        "model_type": "hgnet_v2",
        "stem_channels": [3, 8, 8],
        "embedding_size": 8,
        "stage_in_channels": [8, 16, 32, 64],
        "stage_mid_channels": [8, 8, 16, 16],
        "stage_out_channels": [16, 32, 64, 128],
        "hidden_sizes": [16, 32, 64, 128],
        "stage_num_blocks": [1, 1, 1, 1],
        "stage_numb_of_layers": [1, 1, 1, 1],
        "depths": [1, 1, 1, 1],
        "out_features": ["stage1", "stage2", "stage3", "stage4"],
    }
    config = PPDocLayoutV3Config(
        backbone_config=backbone, encoder_in_channels=[32, 64, 128], encoder_hidden_dim=32,
        encoder_ffn_dim=64, encoder_attention_heads=2, d_model=32, decoder_in_channels=[32] * 3,
        decoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2, num_queries=20,
        num_denoising=0, mask_feature_channels=[16, 16], x4_feat_dim=16, num_prototypes=8,
        global_pointer_head_size=16, id2label=dict(enumerate(PP_LABELS)),
        label2id={name: i for i, name in enumerate(PP_LABELS)},
    )  # fmt: skip
    torch.manual_seed(0)
    PPDocLayoutV3ForObjectDetection(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pp_doclayout(tmp_path_factory.mktemp("tiny-pp-doclayout"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_glm_ocr(tmp_path_factory.mktemp("tiny-glm-ocr"))


def test_a_local_glm_ocr_checkpoint_reads_every_region_once(tiny_model: Path, tmp_path: Path):
    path = tmp_path / "invoice.png"
    testing.invoice().image().save(path)
    config = Settings(
        parser="transformers",
        transformers_model=str(tiny_model),
        layout_backend="rapid",
        ocr_max_tokens=16,
    )
    parser = get_parser(config)
    calls: list[str] = []
    real_recognize = parser.recognize

    def recognize(crop, task):
        calls.append(task)
        text, finish = real_recognize(crop, task)
        assert isinstance(text, str) and finish in ("stop", "length")
        return "read " + task, finish  # the tiny model's own words are noise

    parser.recognize = recognize
    doc = parse_file(path, config, parser)

    regions = doc.pages[0].regions
    assert parser.generations == len(calls) >= 4
    assert sorted(calls) == sorted(
        "table" if r.label == "table" else "text" for r in regions if r.label != "figure"
    )
    assert {r.source for r in regions} == {"transformers"}
    assert doc.parser.name == "transformers"
    assert regions[0].label == "title"
    assert regions[0].text == "read text"
    assert regions[0].bbox.coverage_of(testing.invoice().find("INVOICE").bbox) > 0.9
    assert all(r.bbox_norm == r.bbox.to_norm(1654, 2339) for r in regions)


def test_pp_doclayout_boxes_come_back_in_page_pixels_with_mapped_labels(tiny_layout: Path):
    from scanrag.ingest.loaders import PageImage
    from scanrag.ingest.model import LABELS
    from scanrag.ingest.parsers.ppdoclayout import PPDocLayout, PPDocLayoutOptions

    image = testing.receipt_zh().image()
    page = PageImage(1, image.width, image.height, 200, render=lambda: image)
    options = PPDocLayoutOptions.of(Settings(layout_model=str(tiny_layout)))
    boxes = PPDocLayout(options, threshold=0.0)(page)
    assert len(boxes) == 20  # every query, in the order head's reading order
    for box in boxes:
        assert box.label in LABELS and box.native in PP_LABELS
        assert 0 <= box.bbox.x0 <= box.bbox.x1 <= 900 and 0 <= box.bbox.y0 <= box.bbox.y1 <= 1500


def test_the_default_transformers_setup_runs_pp_doclayout_then_glm_ocr(
    tiny_model: Path, tiny_layout: Path, tmp_path: Path
):
    path = tmp_path / "receipt.png"
    testing.receipt_zh().image().save(path)
    config = Settings(
        parser="transformers",
        transformers_model=str(tiny_model),
        layout_model=str(tiny_layout),
        ocr_max_tokens=16,
    )
    parser = get_parser(config)
    doc = parse_file(path, config, parser)
    assert parser.config()["layout"]["name"] == "pp-doclayout-v3"
    regions = doc.pages[0].regions
    # random weights find nothing above the threshold: the page is read as one region
    assert parser.generations == len([r for r in regions if r.label != "figure"]) >= 1


def test_missing_weights_say_where_they_were_looked_for(tmp_path: Path):
    config = Settings(
        parser="transformers",
        transformers_model=str(tmp_path / "no-such-model"),
        layout_backend="rapid",
    )
    path = tmp_path / "page.png"
    testing.Sheet(400, 300).image().save(path)
    with pytest.raises(ConfigError, match=r"no model folder at .*no-such-model") as caught:
        parse_file(path, config, get_parser(config))
    assert "SCANRAG_TRANSFORMERS_MODEL" in str(caught.value)


def test_a_hub_id_missing_from_the_cache_is_not_downloaded(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    config = Settings(parser="transformers", layout_backend="rapid")  # zai-org/GLM-OCR
    path = tmp_path / "page.png"
    testing.Sheet(400, 300).image().save(path)
    with pytest.raises(ConfigError, match="huggingface-cli download zai-org/GLM-OCR"):
        parse_file(path, config, get_parser(config))


def test_pp_doclayout_detections_follow_the_order_head():
    # three queries, two classes; query 2 scores below the threshold
    logits = torch.tensor([[4.0, -9.0], [-9.0, 3.0], [-9.0, -9.0]])
    boxes = torch.tensor([[0.5, 0.75, 0.2, 0.1], [0.5, 0.25, 0.4, 0.2], [0.5, 0.5, 0.1, 0.1]])
    # pairwise "i comes before j" logits: query 1 before query 0
    order = torch.full((3, 3), -5.0)
    order[1, 0] = 5.0
    order[1, 2] = 5.0
    order[0, 2] = 5.0
    found = detections(logits, boxes, order, 1000, 2000, 0.5)
    assert [(label, round(score, 3)) for label, score, _ in found] == [(1, 0.953), (0, 0.982)]
    assert [tuple(round(v) for v in box) for _, _, box in found] == [
        (300, 300, 700, 700),
        (400, 1400, 600, 1600),
    ]
