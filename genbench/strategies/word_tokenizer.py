"""A word-level tokenizer built in process, for the tiny text models that stand in for T5 and
BLIP-2 offline. It needs no download: the vocabulary is a fixed list of common English words,
the digits and the special tokens, lower-cased and split on whitespace and punctuation.
"""

from __future__ import annotations

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
WORDS = (
    "a an the of on in at by with and or near over under beside behind above below from to into "
    "is are was sitting standing lying flying running walking floating parked growing hanging "
    "photo picture image drawing scan digit number handwritten letter sign "
    "small large big tiny old new bright dark blurry sharp white black red blue green yellow brown grey "
    "sky cloud sun water sea lake river beach field grass tree forest road street city house building "
    "room table wall floor window door car plane boat train bird dog cat horse man woman child people "
    "flower food plate paper book background close up view one two three four five six seven eight nine zero"
).split() + [str(d) for d in range(10)] + [",", "."]


def word_vocabulary() -> dict[str, int]:
    """Token -> id: the special tokens first (pad 0, end 1, unknown 2), then the words."""
    tokens = list(SPECIAL_TOKENS) + [w for w in dict.fromkeys(WORDS)]
    return {tok: i for i, tok in enumerate(tokens)}


def build_word_tokenizer(append_eos: bool):
    """A `PreTrainedTokenizerFast` over `word_vocabulary()`; with `append_eos` every encoded text
    ends in `</s>`, as T5's tokenizer does."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = word_vocabulary()
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    if append_eos:
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
